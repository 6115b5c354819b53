package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/platform/local/bake"
)

// plan lists the cached steps after the start layer: installing packages
// with apt when not bootstrapping (a reheat also upgrades what is there
// when the mirror changed since its parent was built), purging packages,
// then the definition's file and shell steps.
func (r *run) plan() {
	img := r.img
	rel := ""
	if r.release != nil {
		rel = r.release.Digest
	}
	// A parent built from the same mirror snapshot has nothing to upgrade.
	upgrade := r.method == kiln.MethodReheat && (rel == "" || r.parentRelease != rel)
	if r.startDigest != "" && (len(img.Packages) > 0 || upgrade) {
		// apt keeps its parsed package lists (srcpkgcache.bin) in a
		// shared cache outside the image and builds the per-image cache in
		// memory, so a step does not re-parse the mirror's lists each time.
		apt := "apt-get " + aptCacheOpts + aptUnsafeIO + r.aptPinOpts()
		var sc strings.Builder
		// Lists of the apt sources are never in the shared cache.
		update, seeded := len(r.aptSources) > 0, false
		if !update {
			var current bool
			current, seeded = r.listsCurrent()
			update = !current
		}
		if update {
			sc.WriteString(apt + " update -q\n")
		}
		name := "apt: install " + strings.Join(img.Packages, " ")
		if upgrade {
			sc.WriteString(apt + " -y -q -o Dpkg::Options::=--force-confold upgrade\n")
			name = "apt: upgrade"
			if len(img.Packages) > 0 {
				name += ", install " + strings.Join(img.Packages, " ")
			}
		}
		if len(img.Packages) > 0 {
			sc.WriteString(apt + " install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold " + strings.Join(quoteAll(img.Packages), " ") + "\n")
		}
		// The package lists, downloaded packages and parsed lists are
		// bind-mounted from the cache (see aptBinds), so they are not in
		// the layer; a cache file apt wrote anyway would be.
		sc.WriteString("rm -f /var/cache/apt/*.bin\n")
		r.steps = append(r.steps, &step{
			name:   name,
			digest: r.aptStepDigest(img.Packages, upgrade, rel),
			run:    r.aptStep(sc.String(), update, seeded),
		})
	}
	if len(img.Purge) > 0 {
		script := "apt-get" + aptUnsafeIO + " purge -y -q --auto-remove " + strings.Join(quoteAll(img.Purge), " ") + "\n"
		preload, ro := eatMyData()
		r.steps = append(r.steps, &step{
			name: "apt: purge " + strings.Join(img.Purge, " "),
			digest: jsonDigest(struct {
				Kind     string
				Packages []string
			}{"purge", img.Purge}),
			run: r.shellWith([]string{preload + script}, nil, nil, nil, ro),
		})
	}
	for i := range img.Steps {
		st := &img.Steps[i]
		where := r.where(st)
		switch st.Kind {
		case definition.StepFile:
			r.steps = append(r.steps, &step{
				name:   fmt.Sprintf("file %s → %s (%s)", st.Source, st.Destination, where),
				digest: st.Digest,
				run:    func(ctx context.Context, root string) error { return copyInto(root, st) },
			})
		case definition.StepShell:
			var scripts []string
			if len(st.Inline) > 0 {
				scripts = append(scripts, strings.Join(st.Inline, "\n")+"\n")
			}
			name := "shell (" + where + ")"
			if len(st.Scripts) > 0 {
				name = "shell " + strings.Join(st.Scripts, " ") + " (" + where + ")"
			}
			r.steps = append(r.steps, &step{name: name, digest: st.Digest, run: r.shellFiles(scripts, st, st.Env, nil)})
		}
	}
}

func (r *run) where(st *definition.Step) string {
	f := st.Range.Filename
	if r.est != nil && r.est.Dir != "" {
		if rel, err := filepath.Rel(r.est.Dir, f); err == nil && !strings.HasPrefix(rel, "..") {
			f = rel
		}
	}
	if f == "" {
		f = r.img.File
	}
	return fmt.Sprintf("%s:%d", f, st.Range.Start.Line)
}

// apt's state is cached in two places under <dataDir>/cache/apt:
//
//   - lists/ and archives/ are written only by bootstraps: mmdebstrap runs
//     apt on the host side with the mirror's keyring, so what lands there
//     was verified against the signed Release file. Every fresh bake reads
//     and fills them.
//   - lines/<image>/{lists,archives,parsed} are what the apt steps of one
//     image line bind-mount read-write. Code from the image runs in those
//     steps (its apt, its maintainer scripts, anything an origin artifact
//     brought), so whatever it writes is trusted by that line only: one
//     image line can never plant a package, a list or a parsed cache in
//     another's build.
//
// A line's lists are seeded by copying the shared ones when those hold
// the mirror's current Release (copies, not links: a link would let the
// step change the shared file), so the apt step skips apt-get update.
// apt's parsed form of the lists (srcpkgcache.bin, ~1 s to rebuild) is
// mounted on nspawn's /run tmpfs so no mount point lands in the layer;
// the per-image part (pkgcache.bin, which depends on the image's dpkg
// status) is built in memory.
func (r *run) aptBinds() []string {
	lists, archives, parsed := r.lineAptDirs()
	binds := []string{lists + ":/var/lib/apt/lists", archives + ":/var/cache/apt/archives", parsed + ":" + aptParsedDir}
	if r.rebuild != nil {
		// The recorded package versions, on nspawn's /run tmpfs so
		// nothing of them lands in the layer (aptPinOpts).
		binds = append(binds, r.rebuild.pins+":"+aptPinsPath)
	}
	return binds
}

// aptPinsPath is where a rebuild's apt steps find the pins.
const aptPinsPath = "/run/kiln-pins.pref"

// aptPinOpts makes apt read a rebuild's pins besides the image's own
// preferences.
func (r *run) aptPinOpts() string {
	if r.rebuild == nil {
		return ""
	}
	return " -o Dir::Etc::Preferences=" + aptPinsPath
}

// aptStep runs script with the image line's apt caches mounted. The
// directories are made again right before the step: a prune between
// planning and running may have removed them (it keeps what running apt
// steps use, not what a build has only planned). Unless the script runs
// apt-get update, the line's parsed lists are seeded from the shared
// trusted ones when the line has none for its lists (aptparsed.go);
// seeded says the line's lists were just copied from the shared lists.
func (r *run) aptStep(script string, update, seeded bool) func(context.Context, string) error {
	return func(ctx context.Context, root string) error {
		if err := r.writeAptSources(root); err != nil {
			return err
		}
		var seed *parsedSeed
		if !update {
			seed = r.seedParsed(root, seeded)
		}
		preload, ro := eatMyData()
		if err := r.shellWith([]string{preload + script}, nil, nil, r.aptBinds(), ro)(ctx, root); err != nil {
			return err
		}
		if seed != nil {
			if r.seedKept(seed) {
				r.rep.logf("apt used the shared parsed lists %s/%s", sharedParsedDir, seed.key[:12])
			} else {
				r.rep.logf("apt rebuilt the parsed lists seeded from %s/%s (it found them not valid for this image)", sharedParsedDir, seed.key[:12])
			}
		}
		return nil
	}
}

// eatMyData returns the line a step script of kiln's own apt commands
// starts with and the read-only bind it needs, so dpkg and the maintainer
// scripts skip their fsyncs (bake.PreloadLine); none when the host has no
// libeatmydata. A step's layer is kept only once the step succeeded, and
// the artifact store makes the layers durable when it writes them. The
// definition's own shell steps run as written.
func eatMyData() (string, []string) {
	lib := bake.EatMyData()
	if lib == "" {
		return "", nil
	}
	return bake.PreloadLine, []string{lib + ":" + bake.PreloadPath}
}

// aptStepDigest is the apt step's cache key; an image without apt
// sources keeps the key it always had.
func (r *run) aptStepDigest(pkgs []string, upgrade bool, rel string) string {
	if len(r.aptSources) == 0 {
		return jsonDigest(struct {
			Kind     string
			Packages []string
			Upgrade  bool
			Release  string
			Pins     string `json:",omitempty"`
		}{"apt", pkgs, upgrade, rel, r.pinsDigest()})
	}
	return jsonDigest(struct {
		Kind       string
		Packages   []string
		Upgrade    bool
		Release    string
		AptSources []string
		Pins       string `json:",omitempty"`
	}{"apt", pkgs, upgrade, rel, r.aptSourcesDigest(), r.pinsDigest()})
}

// aptUnsafeIO makes dpkg skip its fsync of every unpacked file in kiln's
// apt steps: a step's layer is only kept once the step succeeded, and the
// artifact is fsynced once when the store writes it.
const aptUnsafeIO = " -o Dpkg::Options::=--force-unsafe-io"

// aptParsedDir is where a line's srcpkgcache.bin is mounted in a step.
const aptParsedDir = "/run/kiln-apt"

// aptCacheOpts point apt at the line's parsed lists and keep its
// per-image cache in memory.
const aptCacheOpts = "-o Dir::Cache::srcpkgcache=" + aptParsedDir + "/srcpkgcache.bin -o Dir::Cache::pkgcache="

// listsCurrent reports whether the image line's apt lists hold the
// mirror's current Release file (the same sha256 kiln fetched), so
// apt-get update would only confirm them; when only the shared lists do,
// it copies them to the line first (seeded).
func (r *run) listsCurrent() (current, seeded bool) {
	if r.release == nil || r.debian == nil {
		return false, false
	}
	shared, _ := r.aptDirs()
	line, _, _ := r.lineAptDirs()
	if r.releaseIn(line) {
		return true, false
	}
	if !r.releaseIn(shared) {
		return false, false
	}
	if err := seedLists(shared, line); err != nil {
		r.b.Logger.Warn("apt lists not copied to the image line; the apt step runs apt-get update", "image", r.img.Name, "err", err)
		return false, false
	}
	current = r.releaseIn(line)
	return current, current
}

// releaseListName is apt's name in its lists directory for the Release
// file kiln fetched (mirror URL without the scheme, "/" as "_").
func (r *run) releaseListName() string {
	u := r.release.URL
	if _, after, ok := strings.Cut(u, "://"); ok {
		u = after
	}
	return strings.ReplaceAll(u, "/", "_")
}

// releaseIn reports whether the lists directory dir holds the mirror's
// current Release file (the same sha256 kiln fetched).
func (r *run) releaseIn(dir string) bool {
	d, err := fileDigest(filepath.Join(dir, r.releaseListName()))
	return err == nil && d == r.release.Digest
}

// bootstrapLists returns the shared lists directory and the prefix of
// this mirror's and suite's files in it when those can stand in for the
// bootstrap's apt-get update: the mirror's Release is the one apt
// verified them against, and every component asked for has its Packages
// list. Otherwise it returns "" and the bootstrap downloads the lists.
func (r *run) bootstrapLists() (dir, prefix string) {
	if r.release == nil || r.debian == nil {
		return "", ""
	}
	name := r.releaseListName()
	base := strings.TrimSuffix(strings.TrimSuffix(name, "InRelease"), "Release")
	if base == name || !strings.HasSuffix(base, "_") {
		return "", ""
	}
	shared, _ := r.aptDirs()
	if !r.releaseIn(shared) {
		return "", ""
	}
	comps := r.debian.Components
	if len(comps) == 0 {
		comps = []string{"main"}
	}
	for _, c := range comps {
		if m, _ := filepath.Glob(filepath.Join(shared, base+c+"_binary-*_Packages*")); len(m) == 0 {
			return "", ""
		}
	}
	return shared, base
}

// seedLists replaces the list files in dst with copies of src's (each
// written to a temporary name and renamed, the Release file last, so an
// interrupted copy is never taken as current). The copies keep the
// files' mtimes: apt checks its parsed lists against them.
func seedLists(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	var release []string
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == "lock" {
			continue
		}
		if strings.HasSuffix(e.Name(), "Release") || strings.HasSuffix(e.Name(), "Release.gpg") {
			release = append(release, e.Name())
			continue
		}
		if err := copyAtomic(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	for _, n := range release {
		if err := copyAtomic(filepath.Join(src, n), filepath.Join(dst, n)); err != nil {
			return err
		}
	}
	return nil
}

// copyAtomic copies the file src to dst through a temporary file, with
// src's access and modification times.
func copyAtomic(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &st); err != nil {
		return err
	}
	out, err := os.CreateTemp(filepath.Dir(dst), ".kiln-copy-*")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(0o644); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(st.Atim.Nano()), unix.NsecToTimespec(st.Mtim.Nano())}
	if err := unix.UtimesNano(out.Name(), ts); err != nil {
		return err
	}
	return os.Rename(out.Name(), dst)
}

// aptDirs are the shared lists and package cache bootstraps read and fill.
func (r *run) aptDirs() (lists, archives string) {
	dir := filepath.Join(r.cache.dir, "apt")
	lists, archives = filepath.Join(dir, "lists"), filepath.Join(dir, "archives")
	_ = os.MkdirAll(filepath.Join(lists, "partial"), 0o755)
	_ = os.MkdirAll(filepath.Join(archives, "partial"), 0o755)
	return lists, archives
}

// lineAptDirs are the apt lists, package cache and parsed lists the apt
// steps of this image line use (see aptBinds).
func (r *run) lineAptDirs() (lists, archives, parsed string) {
	dir := filepath.Join(r.cache.dir, "apt", "lines", r.img.Name)
	lists, archives, parsed = filepath.Join(dir, "lists"), filepath.Join(dir, "archives"), filepath.Join(dir, "parsed")
	_ = os.MkdirAll(filepath.Join(lists, "partial"), 0o755)
	_ = os.MkdirAll(filepath.Join(archives, "partial"), 0o755)
	_ = os.MkdirAll(parsed, 0o755)
	return lists, archives, parsed
}

// shellFiles runs inline commands, then the scripts of st (nil: none),
// each read beneath the estate directory and checked against the digest
// recorded when the estate loaded.
func (r *run) shellFiles(inline []string, st *definition.Step, env map[string]string, binds []string) func(context.Context, string) error {
	return r.shellWith(inline, st, env, binds, nil)
}

// shellWith is shellFiles with host paths bind-mounted read-only too.
func (r *run) shellWith(inline []string, st *definition.Step, env map[string]string, binds, ro []string) func(context.Context, string) error {
	return func(ctx context.Context, root string) error {
		// Every step sees the build's SOURCE_DATE_EPOCH (a step's own env
		// may not change it: the layer's times are clamped to it).
		stepEnv := map[string]string{}
		for k, v := range env {
			stepEnv[k] = v
		}
		stepEnv["SOURCE_DATE_EPOCH"] = epochString(r.stepEpoch())
		sh := &bake.Shell{
			Root: root, Machine: "kiln-" + r.w.id[len(r.w.id)-12:], Env: stepEnv,
			ScriptDir: r.w.dir, Binds: binds, ReadOnly: ro, Stdout: r.rep, Stderr: r.rep,
		}
		for _, s := range inline {
			r.rep.logf("$ sh -e <<'EOF'\n%sEOF", s)
			if err := sh.Run(ctx, []byte(s)); err != nil {
				return fmt.Errorf("shell commands failed: %w (the build log has their output)", err)
			}
		}
		for i, p := range scriptPaths(st) {
			b, err := definition.ReadEstateFile(st.Dir, p, st.ScriptDigests[i])
			if err != nil {
				return fmt.Errorf("script %s: %w", st.Scripts[i], err)
			}
			r.rep.logf("$ sh -e %s", p)
			if err := sh.Run(ctx, b); err != nil {
				return fmt.Errorf("script %s failed: %w (the build log has its output)", filepath.Base(p), err)
			}
		}
		return nil
	}
}

// scriptPaths are st's script files; none for a nil step.
func scriptPaths(st *definition.Step) []string {
	if st == nil {
		return nil
	}
	return st.ScriptPaths
}

// copyInto copies a file step's source into the root. Paths are resolved
// inside the root (an absolute symlink in the image never reaches the
// host), parents are created 0755 root-owned, owner names come from the
// image's /etc/passwd and /etc/group.
func copyInto(root string, st *definition.Step) error {
	dest := path.Clean("/" + st.Destination)
	if dest == "/" {
		return kiln.Errorf(kiln.EINVALID, "file step destination %q is not a file path", st.Destination)
	}
	uid, gid, err := bake.LookupOwner(root, st.Owner)
	if err != nil {
		return kiln.Errorf(kiln.EINVALID, "file %s: owner %q: %v", st.Destination, st.Owner, err)
	}
	mode := st.Mode
	if mode == 0 {
		mode = 0o644
	}
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(rootfd)
	dirfd, err := mkdirInRoot(rootfd, path.Dir(dest))
	if err != nil {
		return fmt.Errorf("create parent of %s: %w", dest, err)
	}
	defer unix.Close(dirfd)
	name := path.Base(dest)
	_ = unix.Unlinkat(dirfd, name, 0) // replace a file or symlink, never follow it
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", dest, err)
	}
	f := os.NewFile(uintptr(fd), dest)
	defer f.Close()
	src, err := definition.OpenEstateFile(st.Dir, st.Path, st.SourceDigest)
	if err != nil {
		return fmt.Errorf("file step source %s: %w", st.Source, err)
	}
	defer src.Close()
	if _, err := io.Copy(f, src); err != nil {
		return fmt.Errorf("copy %s: %w", st.Source, err)
	}
	if err := f.Chown(uid, gid); err != nil {
		return err
	}
	if err := f.Chmod(os.FileMode(mode&0o777) | modeBits(mode)); err != nil {
		return err
	}
	return f.Close()
}

func modeBits(m uint32) os.FileMode {
	var out os.FileMode
	if m&0o4000 != 0 {
		out |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

// mkdirInRoot opens dir inside the root, creating missing directories,
// with every path component resolved as if root were "/".
func mkdirInRoot(rootfd int, dir string) (int, error) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT}
	cur := "."
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if part == "" {
			continue
		}
		next := cur + "/" + part
		fd, err := unix.Openat2(rootfd, next, how)
		if err == unix.ENOENT {
			pfd, perr := unix.Openat2(rootfd, cur, how)
			if perr != nil {
				return -1, perr
			}
			perr = unix.Mkdirat(pfd, part, 0o755)
			unix.Close(pfd)
			if perr != nil && perr != unix.EEXIST {
				return -1, perr
			}
			fd, err = unix.Openat2(rootfd, next, how)
		}
		if err != nil {
			return -1, err
		}
		unix.Close(fd)
		cur = next
	}
	return unix.Openat2(rootfd, cur, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
}

func quoteAll(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return out
}

func jsonDigest(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
