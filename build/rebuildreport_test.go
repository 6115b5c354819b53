package build

import (
	"archive/tar"
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/layer"
	"github.com/kiln-project/kiln/platform/local/bake"
)

// writeTree makes a small root filesystem and returns its tar index.
func tarIndex(t *testing.T, files map[string]string, mtime time.Time) map[string]tarEntry {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := bake.ClampTree(context.Background(), dir, mtime); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := layer.WriteTar(context.Background(), dir, &buf, layer.WriteOptions{ClampMtime: mtime}); err != nil {
		t.Fatal(err)
	}
	idx := map[string]tarEntry{}
	if err := indexTar(context.Background(), &buf, idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

func TestDiffEntriesAndReport(t *testing.T) {
	epoch := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	a := tarIndex(t, map[string]string{"etc/stamp": "1\n", "etc/motd": "hi\n", "var/gone": "x"}, epoch)
	b := tarIndex(t, map[string]string{"etc/stamp": "2\n", "etc/motd": "hi\n", "var/new": "y"}, epoch)
	diffs := diffEntries(a, b)
	want := []string{"etc/stamp content", "var/gone only in recorded", "var/new only in rebuilt"}
	var got []string
	for _, d := range diffs {
		got = append(got, d.Path+" "+strings.Join(d.What, ","))
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("diffs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := diffEntries(a, a); len(d) != 0 {
		t.Fatalf("an artifact differs from itself: %+v", d)
	}
	// The same tree written twice is the same bytes; a later mtime is
	// clamped to the epoch, so only an earlier one shows.
	c := tarIndex(t, map[string]string{"etc/stamp": "1\n", "etc/motd": "hi\n", "var/gone": "x"}, epoch.Add(-time.Hour))
	if d := diffEntries(a, c); len(d) == 0 || d[0].What[len(d[0].What)-1] != "mtime" {
		t.Fatalf("an earlier epoch should show as mtime differences: %+v", d)
	}

	diffs[0].Step = "shell (stamp.kiln.hcl:4)"
	rep := &RebuildReport{
		Version: kiln.VersionRef{Image: "stamp", Number: 1}, Recorded: "sha256:" + strings.Repeat("a", 64), Rebuilt: "sha256:" + strings.Repeat("b", 64),
		Epoch: epoch, From: "git commit abc", Files: diffs, Elapsed: 3 * time.Second,
		Packages: packageDiffs([]kiln.Package{{Name: "bash", Version: "5.2-1", Architecture: "amd64"}, {Name: "old", Version: "1", Architecture: "all"}},
			[]kiln.Package{{Name: "bash", Version: "5.2-2", Architecture: "amd64"}}),
		maxFiles: 2,
	}
	out := rep.String()
	for _, s := range []string{
		"stamp-1 rebuilt from its provenance (SOURCE_DATE_EPOCH 1796083200, 2026-12-01T00:00:00Z, from git commit abc)",
		"different: recorded sha256:aaaa",
		"3 files differ (1 changed, 1 only in recorded, 1 only in rebuilt); the first 2:",
		"  /etc/stamp  content  (written by shell (stamp.kiln.hcl:4))",
		"  /var/gone  only in recorded\n",
		"shell (stamp.kiln.hcl:4): 1 files",
		"2 packages differ from the recorded manifest:",
		"bash:amd64  recorded 5.2-1, rebuilt 5.2-2",
		"old:all  recorded 1, rebuilt (none)",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("report lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "/var/new") {
		t.Errorf("report lists more than --max-files:\n%s", out)
	}
	rec := rep.Reproduction()
	if rec.Identical || rec.Digest != rep.Rebuilt || !strings.Contains(rec.Summary, "/etc/stamp  content") || rec.Elapsed != 3*time.Second {
		t.Errorf("record: %+v", rec)
	}
	if rec.DifferingFiles != len(rep.Files) || len(rec.Files) != len(rep.Files) || rec.Files[0].Path != rep.Files[0].Path || rec.Files[0].Step != rep.Files[0].Step || len(rec.Files[0].What) == 0 {
		t.Errorf("record's files: %d %+v; want the report's %+v", rec.DifferingFiles, rec.Files, rep.Files)
	}
	rep.Identical, rep.Files, rep.Packages, rep.Rebuilt = true, nil, nil, rep.Recorded
	if out := rep.String(); !strings.Contains(out, "identical: sha256:aaaa") || strings.Contains(out, "differ") {
		t.Errorf("identical report:\n%s", out)
	}
	if rec := rep.Reproduction(); !rec.Identical || rec.Summary != "" || rec.DifferingFiles != 0 || rec.Files != nil {
		t.Errorf("identical record: %+v", rec)
	}
}

func TestDigestEpoch(t *testing.T) {
	d := "sha256:" + strings.Repeat("3f", 32)
	e1, e2 := digestEpoch(d), digestEpoch(d)
	if !e1.Equal(e2) || e1.Before(digestEpochBase) || !e1.Before(digestEpochBase.AddDate(5, 1, 0)) || e1.Hour() != 0 {
		t.Fatalf("digestEpoch(%s) = %s", d, e1)
	}
	if digestEpoch("sha256:" + strings.Repeat("40", 32)).Equal(e1) {
		t.Error("two digests, one day")
	}
	img := definitionImage(d)
	tm, from := sourceDateEpoch(context.Background(), nil, img, 0)
	if !tm.Equal(e1) || from != "definition digest "+d {
		t.Errorf("no estate: %s %q", tm, from)
	}
	tm, from = sourceDateEpoch(context.Background(), nil, img, 1700000000)
	if tm.Unix() != 1700000000 || from != "setting" {
		t.Errorf("setting: %s %q", tm, from)
	}
	if _, err := ParseSourceDateEpoch("--source-date-epoch", "yesterday"); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("bad setting: %v", err)
	}
}

func TestReleaseFileHasNoBuildTime(t *testing.T) {
	epoch := time.Unix(1796083200, 0).UTC()
	got := string(releaseFile([]byte("build_time=2026-01-01T00:00:00Z\nrole=web\n"), releaseInfo{
		image: "web", number: 3, semver: "1.2.0", defDigest: "sha256:x", method: "fresh", epoch: epoch,
	}))
	want := "image=web\nversion=3\nname=web-3\nsemver=1.2.0-20261201_0000\nsource_date_epoch=1796083200\ndefinition_digest=sha256:x\nmethod=fresh\nrole=web\n"
	if got != want {
		t.Errorf("release file:\n%s\nwant:\n%s", got, want)
	}
}

func TestScrub(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"etc/machine-id": "0123456789abcdef\n", "etc/ssh/ssh_host_ed25519_key": "k", "etc/ssh/ssh_host_ed25519_key.pub": "p",
		"etc/ssh/sshd_config": "keep", "usr/sbin/sshd": "", "var/log/dpkg.log": "x", "var/log/apt/history.log": "x",
		"var/log/app/app.log": "keep the file, not the lines", "var/cache/ldconfig/aux-cache": "x",
		"var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease": "x", "var/lib/apt/lists/lock": "",
		"var/cache/apt/pkgcache.bin": "x", "var/cache/apt/archives/a.deb": "x", "var/cache/fontconfig/x.cache-8": "x",
		"var/lib/systemd/random-seed": "x",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := scrub(root); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub", "var/log/dpkg.log", "var/log/apt/history.log",
		"var/cache/ldconfig/aux-cache", "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", "var/cache/apt/pkgcache.bin",
		"var/cache/apt/archives/a.deb", "var/cache/fontconfig/x.cache-8", "var/lib/systemd/random-seed"} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); err == nil {
			t.Errorf("/%s is still there", gone)
		}
	}
	for name, size := range map[string]int64{"etc/machine-id": 0, "var/log/app/app.log": 0, "etc/ssh/sshd_config": 4, "var/lib/apt/lists/lock": 0} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Size() != size {
			t.Errorf("/%s: %v, size want %d", name, err, size)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "var/log/app/app.log")); fi == nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("an emptied log kept its mode: %v", fi)
	}
	unit, err := os.ReadFile(filepath.Join(dir, "etc/systemd/system", sshKeygenUnitName))
	if err != nil || !strings.Contains(string(unit), "ssh-keygen -A") {
		t.Fatalf("no host key unit: %v", err)
	}
	for _, wants := range []string{"multi-user.target.wants", "ssh.service.wants"} {
		if l, err := os.Readlink(filepath.Join(dir, "etc/systemd/system", wants, sshKeygenUnitName)); err != nil || l != "/etc/systemd/system/"+sshKeygenUnitName {
			t.Errorf("%s: %q %v", wants, l, err)
		}
	}
}

func definitionImage(digest string) *definition.Image {
	return &definition.Image{Name: "web", File: "web.kiln.hcl", Digest: digest}
}

// A layer's whiteouts and opaque markers remove what the layers below
// gave, as the merged root filesystem has it.
func TestIndexTarAppliesWhiteouts(t *testing.T) {
	tarOf := func(entries map[string]string) *bytes.Buffer {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, name := range slices.Sorted(maps.Keys(entries)) {
			body := entries[name]
			h := &tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(body))}
			if strings.HasSuffix(name, "/") {
				h = &tar.Header{Name: name, Mode: 0o755, Typeflag: tar.TypeDir}
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				_, _ = tw.Write([]byte(body))
			}
		}
		_ = tw.Close()
		return &buf
	}
	idx := map[string]tarEntry{}
	ctx := context.Background()
	for _, l := range []map[string]string{
		{"etc/": "", "etc/keep": "1", "etc/gone": "2", "var/": "", "var/lib/": "", "var/lib/a": "3", "opt/": "", "opt/x": "4"},
		{"etc/.wh.gone": "", "var/lib/.wh..wh..opq": "", "var/lib/b": "5", "etc/keep": "changed"},
	} {
		if err := indexTar(ctx, tarOf(l), idx); err != nil {
			t.Fatal(err)
		}
	}
	got := slices.Sorted(maps.Keys(idx))
	want := []string{"etc", "etc/keep", "opt", "opt/x", "var", "var/lib", "var/lib/b"}
	if !slices.Equal(got, want) {
		t.Fatalf("merged entries %v, want %v", got, want)
	}
	if idx["etc/keep"].size != int64(len("changed")) {
		t.Errorf("etc/keep is the lower layer's: %+v", idx["etc/keep"])
	}
}

// TestScrubLayer: a step's layer loses what the release step would take
// out of the tree (dpkg's log, apt's history, ldconfig's aux cache) and
// keeps everything else, so two bakes give the same layer.
func TestScrubLayer(t *testing.T) {
	dir := t.TempDir()
	for p, body := range map[string]string{
		"var/log/dpkg.log":             "2026-12-07 03:00:00 install nginx\n",
		"var/log/apt/history.log":      "Start-Date: 2026-12-07\n",
		"var/log/nginx/access.log":     "GET /\n",
		"var/cache/ldconfig/aux-cache": "inodes",
		"etc/nginx/nginx.conf":         "events {}\n",
	} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := scrubLayer(dir); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"var/log/dpkg.log", "var/log/apt/history.log", "var/cache/ldconfig/aux-cache"} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); err == nil {
			t.Errorf("%s is still in the layer", gone)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "var/log/nginx/access.log")); err != nil || fi.Size() != 0 {
		t.Errorf("a log under /var/log is kept empty: %v %v", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "etc/nginx/nginx.conf")); err != nil || string(b) != "events {}\n" {
		t.Errorf("the step's own file changed: %q %v", b, err)
	}
}

func TestLayerNotes(t *testing.T) {
	l := func(d, diff string) kiln.Layer {
		return kiln.Layer{Digest: d, DiffID: diff, Size: 1, MediaType: kiln.LayerMediaTypeGzip}
	}
	rec := &kiln.Artifact{Layers: []kiln.Layer{l("sha256:a", "sha256:1"), l("sha256:b", "sha256:2"), l("sha256:c", "sha256:3")}}
	reb := &kiln.Artifact{Layers: []kiln.Layer{l("sha256:a", "sha256:1"), l("sha256:x", "sha256:9"), l("sha256:y", "sha256:3"), l("sha256:z", "sha256:4")}}
	notes := strings.Join(layerNotes(rec, reb), "\n")
	for _, want := range []string{"has 3 layers, the rebuilt one 4", "layer 2: content differs", "layer 3: same content (diff ID sha256:3) in another blob"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, "layer 1:") {
		t.Errorf("an identical layer is noted:\n%s", notes)
	}
	if n := layerNotes(rec, rec); len(n) != 0 {
		t.Errorf("identical lists: %v", n)
	}
}

// compareArtifacts on two real artifacts whose /etc/stamp differs runs
// Debian's diffoscope on that file alone (not on the identical /etc/motd,
// nor on /etc/mode, whose content is the same) and the report carries its
// text: the file and both lines, without the temporary directory's path.
func TestDiffoscopeNamesTheDifference(t *testing.T) {
	ci.Tool(t, "diffoscope", "diffoscope-minimal")
	ctx := context.Background()
	dataDir := t.TempDir()
	arts, err := artifact.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	epoch := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	put := func(stamp string, mode os.FileMode) *kiln.Artifact {
		t.Helper()
		dir := t.TempDir()
		for name, content := range map[string]string{"etc/stamp": stamp, "etc/motd": "hi\n", "etc/mode": "same\n"} {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(filepath.Join(dir, "etc/mode"), mode); err != nil {
			t.Fatal(err)
		}
		if err := bake.ClampTree(ctx, dir, epoch); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := layer.WriteTar(ctx, dir, &buf, layer.WriteOptions{ClampMtime: epoch}); err != nil {
			t.Fatal(err)
		}
		a, err := arts.Put(ctx, &buf)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	rep := &RebuildReport{Version: kiln.VersionRef{Image: "stamp", Number: 1}, Epoch: epoch, From: "test",
		recorded: put("built at 1\n", 0o644), rebuilt: put("built at 2\n", 0o600)}
	rep.Recorded, rep.Rebuilt = rep.recorded.Digest, rep.rebuilt.Digest
	r := &run{b: &Builder{Artifacts: arts, DataDir: dataDir}}
	if err := r.compareArtifacts(ctx, rep, 20); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range rep.Files {
		got = append(got, f.Path+" "+strings.Join(f.What, ","))
	}
	if strings.Join(got, "|") != "etc/mode mode|etc/stamp content" {
		t.Fatalf("differing files %q; want etc/mode (mode) and etc/stamp (content)", got)
	}
	d := rep.Diffoscope
	for _, want := range []string{"recorded/etc__stamp", "rebuilt/etc__stamp", "-built at 1", "+built at 2"} {
		if !strings.Contains(d, want) {
			t.Errorf("diffoscope's report lacks %q:\n%s", want, d)
		}
	}
	for _, not := range []string{"etc__motd", "etc__mode", dataDir, "not run"} {
		if strings.Contains(d, not) {
			t.Errorf("diffoscope's report has %q:\n%s", not, d)
		}
	}
	if out := rep.String(); !strings.Contains(out, "\ndiffoscope:\n") || !strings.Contains(out, "+built at 2") {
		t.Errorf("the printed report lacks diffoscope's section:\n%s", out)
	}
	if es, err := os.ReadDir(dataDir); err != nil {
		t.Fatal(err)
	} else {
		for _, e := range es {
			if strings.HasPrefix(e.Name(), ".diffoscope-") {
				t.Errorf("diffoscope's work directory %s was left behind", e.Name())
			}
		}
	}
}
