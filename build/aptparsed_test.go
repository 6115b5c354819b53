package build

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReheatSeedsSharedParsedLists: an image line's first apt step gets
// the parsed lists (srcpkgcache.bin) the bootstrap made from trusted
// inputs, and apt uses them instead of parsing the lists; a shared cache
// that was altered, or whose lists changed, is not used (apt parses the
// lists as before), and the next bootstrap makes it again.
func TestReheatSeedsSharedParsedLists(t *testing.T) {
	b := needBuilder(t)
	dir := t.TempDir()
	def := func(name, method, packages string) map[string]string {
		return map[string]string{name + ".kiln.hcl": `image "` + name + `" {
  method   = "` + method + `"
  packages = [` + packages + `]
` + debianBlock + `}
`}
	}
	apt := filepath.Join(shared.dataDir, "cache", "apt")
	fresh := func(name string) {
		t.Helper()
		build(t, b, estate(t, dir, def(name, "fresh", "")), name, Options{})
	}
	reheat := func(name string) (log string, lineBin string) {
		t.Helper()
		res := build(t, b, estate(t, dir, def(name, "reheat", `"hello"`)), name, Options{})
		return string(res.Log), filepath.Join(apt, "lines", name, "parsed", "srcpkgcache.bin")
	}

	// Line a: the first apt step of the line takes the shared cache, and
	// apt keeps it (it rewrites the file when it finds it not valid).
	fresh("parsed-a")
	log, lineBin := reheat("parsed-a")
	m := regexp.MustCompile(`apt: parsed lists seeded from the shared cache ` + sharedParsedDir + `/([0-9a-f]{12})`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("the line's first apt step did not seed the shared parsed lists; log:\n%s", log)
	}
	if !strings.Contains(log, "apt used the shared parsed lists "+sharedParsedDir+"/"+m[1]) {
		t.Fatalf("apt did not use the seeded parsed lists; log:\n%s", log)
	}
	dirs, _ := filepath.Glob(filepath.Join(apt, sharedParsedDir, m[1]+"*"))
	if len(dirs) != 1 {
		t.Fatalf("shared parsed lists %s: %v", m[1], dirs)
	}
	sharedBin := filepath.Join(dirs[0], "srcpkgcache.bin")
	key := filepath.Base(dirs[0])
	r := &run{cache: &cache{dir: filepath.Join(shared.dataDir, "cache")}}
	rec, err := r.loadSharedParsed(key)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := fileDigest(lineBin); d != rec.Digest {
		t.Errorf("the line's parsed lists after the step: %s, want the shared %s", d, rec.Digest)
	}
	if !sameMtime(t, lineBin, sharedBin) {
		t.Error("apt rewrote the seeded parsed lists")
	}
	if rec.Layer == "" || !strings.HasPrefix(rec.Apt, "2.") || len(rec.Lists) < 2 {
		t.Errorf("record %+v: want the bootstrap layer, apt's version and the InRelease and Packages lists", rec)
	}

	// Line b: the shared file altered after it was made (same size and
	// time): refused by its sha256, apt parses the lists itself.
	fresh("parsed-b")
	fi, err := os.Stat(sharedBin)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(sharedBin, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	one := []byte{0}
	if _, err := f.ReadAt(one, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	one[0] ^= 0xff
	if _, err := f.WriteAt(one, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(sharedBin, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	log, lineBin = reheat("parsed-b")
	if !strings.Contains(log, "the shared parsed lists are not used") || !strings.Contains(log, "its record says") || strings.Contains(log, "seeded from the shared cache") {
		t.Errorf("an altered shared cache: want it refused by its sha256; log:\n%s", log)
	}
	if sameMtime(t, lineBin, sharedBin) {
		t.Error("line b's parsed lists are the shared ones; want apt's own")
	}

	// The next bootstrap (here from the step cache) replaces it.
	fresh("parsed-c")
	if again, err := r.loadSharedParsed(key); err != nil || again.Made.Equal(rec.Made) {
		t.Fatalf("the altered shared parsed lists were not made again: %v", err)
	} else if again.Digest != rec.Digest {
		t.Logf("made again: %+v\nfirst: %+v", again, rec)
	}

	// Line c: the shared lists' times changed since the cache was made
	// (the line's copies keep them): apt would reject it, kiln does not
	// offer it.
	pkgs, _ := filepath.Glob(filepath.Join(apt, "lists", "*_Packages"))
	if len(pkgs) == 0 {
		t.Fatal("no Packages list in the shared lists")
	}
	pfi, err := os.Stat(pkgs[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chtimes(pkgs[0], pfi.ModTime(), pfi.ModTime()) })
	if err := os.Chtimes(pkgs[0], pfi.ModTime().Add(time.Second), pfi.ModTime().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	log, lineBin = reheat("parsed-c")
	if !strings.Contains(log, "the line's lists differ") || strings.Contains(log, "seeded from the shared cache") {
		t.Errorf("shared parsed lists of lists with other times: want them refused; log:\n%s", log)
	}
	if sameMtime(t, lineBin, sharedBin) {
		t.Error("line c's parsed lists are the shared ones; want apt's own")
	}
}

func sameMtime(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return fa.ModTime().Equal(fb.ModTime())
}

// TestCleanupRemovesHalfMadeSharedParsed: kiln's start-up cleanup removes
// what an interrupted build left making shared parsed lists, and only that.
func TestCleanupRemovesHalfMadeSharedParsed(t *testing.T) {
	dir := t.TempDir()
	sp := filepath.Join(dir, "apt", sharedParsedDir)
	old, young, made := filepath.Join(sp, tmpPrefix+"old"), filepath.Join(sp, tmpPrefix+"young"), filepath.Join(sp, strings.Repeat("cd", 32))
	for _, p := range []string{old, young, made} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	then := time.Now().Add(-time.Hour)
	if err := os.Chtimes(old, then, then); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(made, then, then); err != nil {
		t.Fatal(err)
	}
	removed := cleanCacheTemp(dir)
	if len(removed) != 1 || removed[0] != old {
		t.Errorf("removed %v, want only %s", removed, old)
	}
	for _, p := range []string{young, made} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v, want kept", p, err)
		}
	}
}
