package bake

import (
	"os"
	"path/filepath"
)

// eatmydata: the build makes its result durable once, when the artifact
// store writes and fsyncs the layers, so nothing dpkg writes before needs
// to reach the disk. dpkg's --force-unsafe-io only skips the fsync of the
// unpacked files; dpkg still syncs its database (the status journal under
// /var/lib/dpkg/updates, the status file) several times per package, and
// maintainer scripts sync too. libeatmydata (the Debian package
// libeatmydata1, which `eatmydata` depends on) turns fsync, fdatasync,
// sync and O_SYNC into no-ops for a process and its children. The host's
// library is used, never the mirror's: nothing is downloaded for it, and
// nothing of it stays in the image.

// PreloadPath is where a step's shell finds libeatmydata (a read-only bind
// on nspawn's /run tmpfs, so it is never in a layer).
const PreloadPath = "/run/kiln-eatmydata.so"

// chrootPreload is where a bootstrap's chroot has it while dpkg runs
// (removed by the customize hook). Under /usr, because usrmerge's
// convert-usrmerge (run by the bootstrap of bookworm) moves every file
// `ldd /bin/cp` names outside /usr, the preloaded library too; and not
// named lib*, so ldconfig leaves it out of /etc/ld.so.cache.
const chrootPreload = "/usr/lib/kiln-eatmydata.so"

// EatMyData returns the host's libeatmydata, or "" when it is not
// installed (apt-get install eatmydata): bakes then run without it, only
// slower.
func EatMyData() string {
	for _, pat := range []string{"/usr/lib/*/libeatmydata.so.1", "/usr/lib/libeatmydata.so.1", "/usr/lib64/libeatmydata.so.1"} {
		m, _ := filepath.Glob(pat)
		for _, p := range m {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p
			}
		}
	}
	return ""
}

// PreloadLine is the shell line a step script starts with to run its
// commands under libeatmydata bound at PreloadPath: only when the image's
// C library loads it without a word (an image older than the host's
// glibc may not), else the step runs as it would without it.
//
// Only on a merged /usr (/bin a symbolic link): usrmerge's conversion of
// an older image moves what `ldd` names outside /usr, and PreloadPath is
// such a name.
const PreloadLine = `if [ -L /bin ] && [ -r ` + PreloadPath + ` ] && [ -z "$(LD_PRELOAD=` + PreloadPath + ` /bin/true 2>&1)" ]; then export LD_PRELOAD=` + PreloadPath + `${LD_PRELOAD:+:$LD_PRELOAD}; fi` + "\n"

// dpkgWrapperHooks returns the mmdebstrap hooks that run the chroot's
// dpkg (and so every maintainer script, and apt's dpkg calls) through a
// wrapper while the bootstrap runs: right after the essential packages
// are extracted, /usr/bin/dpkg is diverted to /usr/bin/dpkg.distrib and
// replaced by a script that sets what the bootstrap asks for, then runs
// the real dpkg:
//
//   - lib, the host's libeatmydata, preloaded (after the pattern of
//     mmdebstrap's own hooks/eatmydata but with the host's library, no
//     download, and without its final sync), when the chroot's C library
//     loads it silently;
//   - shim, the host file of the dpkg-deb shim (fsys.go), put first on
//     dpkg's PATH from shimDir, so dpkg --install reads the data archives
//     the extraction decompressed.
//
// Its customize hook, the first but for decompress's stop hook (fsys.go),
// undoes all of it: the wrapper, the diversion
// (and the diversions file when there was none), the library, the shim.
// Nothing happens when neither applies.
func dpkgWrapperHooks(lib, shim string) []string {
	const (
		dpkg = `"$r/usr/bin/dpkg"`
		real = `"$r/usr/bin/dpkg.distrib"`
		div  = `"$r/var/lib/dpkg/diversions"`
		lbin = `"$r` + chrootPreload + `"`
		sbin = `"$r` + shimDir + `"`
		mark = `"$r/tmp/kiln-eatmydata.new-diversions"`
		wrap = `"$r/tmp/kiln-dpkg-wrapper"`
	)
	extract := `r="$1"; [ -f ` + dpkg + ` ] && [ ! -e ` + real + ` ] || exit 0; env=""; `
	if lib != "" {
		extract += `if cp ` + shellQuote(lib) + ` ` + lbin + `; then ` +
			`if [ -n "$(chroot "$r" /usr/bin/env LD_PRELOAD=` + chrootPreload + ` /bin/true 2>&1)" ]; then rm -f ` + lbin + `; ` +
			`else env='LD_PRELOAD=` + chrootPreload + `${LD_PRELOAD:+:$LD_PRELOAD} '; fi; fi; `
	}
	if shim != "" {
		extract += `if mkdir -p ` + sbin + ` && cp ` + shellQuote(shim) + ` ` + sbin + `/dpkg-deb && chmod 755 ` + sbin + `/dpkg-deb; then ` +
			`env="${env}PATH=` + shimDir + `:\$PATH "; else rm -rf ` + sbin + `; fi; `
	}
	extract += `[ -n "$env" ] || exit 0; ` +
		`[ -e ` + div + ` ] || : > ` + mark + `; ` +
		`: > ` + wrap + ` && mv ` + dpkg + ` ` + real + ` && ` +
		`printf '#!/bin/sh\n%sexec /usr/bin/dpkg.distrib "$@"\n' "$env" > ` + dpkg + ` && ` +
		`chmod 755 ` + dpkg + ` && ` +
		`printf '/usr/bin/dpkg\n/usr/bin/dpkg.distrib\n:\n' >> ` + div
	customize := `r="$1"; [ -e ` + wrap + ` ] || exit 0; ` +
		`if [ -e ` + real + ` ]; then rm -f ` + dpkg + ` && mv ` + real + ` ` + dpkg + `; fi && ` +
		`for f in ` + div + ` ` + div + `-old; do [ -e "$f" ] || continue; ` +
		`awk 'NR%3==1{a=$0;next} NR%3==2{b=$0;next} !(a=="/usr/bin/dpkg" && b=="/usr/bin/dpkg.distrib" && $0==":"){print a; print b; print}' "$f" > "$f.kiln" && ` +
		`cat "$f.kiln" > "$f" && rm -f "$f.kiln" || exit 1; done && ` +
		`if [ -e ` + mark + ` ] && [ ! -s ` + div + ` ]; then rm -f ` + div + `; fi && ` +
		`rm -rf ` + lbin + ` ` + mark + ` ` + wrap + ` ` + sbin + ` "$r` + fsysDir + `"`
	return []string{"--extract-hook=" + extract, "--customize-hook=" + customize}
}
