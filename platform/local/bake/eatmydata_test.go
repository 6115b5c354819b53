package bake

import (
	"strings"
	"testing"
)

func TestBootstrapArgsEatMyData(t *testing.T) {
	b := &Bootstrap{Suite: "bookworm", Mirror: "http://m", UnsafeIO: true, EatMyData: "/usr/lib/x86_64-linux-gnu/libeatmydata.so.1"}
	args := b.Args("/t", "")
	var extract, customize []string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "--extract-hook="):
			extract = append(extract, a)
		case strings.HasPrefix(a, "--customize-hook="):
			customize = append(customize, a)
		}
	}
	if len(extract) != 1 || !strings.Contains(extract[0], "'/usr/lib/x86_64-linux-gnu/libeatmydata.so.1'") || !strings.Contains(extract[0], "dpkg.distrib") {
		t.Fatalf("extract hooks %q", extract)
	}
	if len(customize) == 0 || !strings.Contains(customize[0], "dpkg.distrib") {
		t.Fatalf("the first customize hook must undo the wrapper before the others see the image: %q", customize)
	}
	if plain := strings.Join((&Bootstrap{Suite: "bookworm", Mirror: "http://m"}).Args("/t", ""), "\n"); strings.Contains(plain, "eatmydata") {
		t.Errorf("a bootstrap without EatMyData (the raw benchmark's) has it:\n%s", plain)
	}
}

// With DecompressOnce the dpkg wrapper puts the chroot's shim first on
// dpkg's PATH, the first customize hook stops the decompression ahead and
// the next removes the shim and the kept archives; mmdebstrap runs with
// the host's shim first on its PATH.
func TestBootstrapArgsDecompressOnce(t *testing.T) {
	b := &Bootstrap{Suite: "bookworm", Mirror: "http://m", DecompressOnce: "/w/shims"}
	var extract, customize []string
	for _, a := range b.Args("/t", "") {
		switch {
		case strings.HasPrefix(a, "--extract-hook="):
			extract = append(extract, a)
		case strings.HasPrefix(a, "--customize-hook="):
			customize = append(customize, a)
		}
	}
	if len(extract) != 1 || !strings.Contains(extract[0], "'/w/shims/chroot-dpkg-deb'") || !strings.Contains(extract[0], `PATH=/run/kiln-shim:\$PATH`) {
		t.Fatalf("extract hooks %q", extract)
	}
	if strings.Contains(extract[0], "LD_PRELOAD") {
		t.Errorf("no EatMyData, yet the wrapper preloads: %q", extract[0])
	}
	if len(customize) < 2 || !strings.Contains(customize[0], "'/w/shims'/stop") || !strings.Contains(customize[1], `"$r/run/kiln-shim" "$r/run/kiln-fsys"`) {
		t.Fatalf("the first customize hooks must stop the decompression, then remove the shim and the kept archives: %q", customize)
	}
	cmd := b.Command(t.Context(), "/t", "", nil)
	if path := cmd.Env[len(cmd.Env)-1]; !strings.HasPrefix(path, "PATH=/w/shims/bin:") {
		t.Errorf("mmdebstrap's PATH: %q, want the host's shim first", path)
	}
}
