package build

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/layer"
)

// RebuildReport is what `kiln version rebuild IMAGE-N --check` found.
type RebuildReport struct {
	Version kiln.VersionRef `json:"version"`
	// Recorded and Rebuilt are the two artifacts' digests.
	Recorded  string `json:"recorded"`
	Rebuilt   string `json:"rebuilt"`
	Identical bool   `json:"identical"`
	// Epoch is the SOURCE_DATE_EPOCH both bakes used, From where it came
	// from.
	Epoch time.Time `json:"source_date_epoch"`
	From  string    `json:"source_date_epoch_from"`
	// Files are the paths that differ (all of them, sorted), Packages the
	// package versions that differ from the recorded manifest.
	Files    []FileDiff    `json:"files,omitempty"`
	Packages []PackageDiff `json:"packages,omitempty"`
	// Diffoscope is diffoscope's text report on the first differing
	// files, when it is installed.
	Diffoscope string `json:"diffoscope,omitempty"`
	// Notes explain differences the rebuild could not avoid (another
	// agent binary, a mirror that moved on).
	Notes   []string      `json:"notes,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// Log is the rebuild's build log.
	Log []byte `json:"-"`
	// maxFiles bounds the files String details.
	maxFiles int
	// recorded and rebuilt are the two artifacts (single tars or layer
	// stacks) compared file by file.
	recorded, rebuilt *kiln.Artifact
}

// FileDiff is one path that differs between the recorded and the rebuilt
// artifact.
type FileDiff struct {
	Path string `json:"path"`
	// What differs: "only in recorded", "only in rebuilt", "content",
	// "size", "type", "mode", "owner", "mtime", "link target", "xattrs".
	What []string `json:"what"`
	// Step names the step whose layer holds the path in the rebuild (the
	// step that wrote it), with its file:line where it has one.
	Step string `json:"step,omitempty"`
}

// PackageDiff is a package whose rebuilt version is not the recorded one.
type PackageDiff struct {
	Name     string `json:"name"`
	Recorded string `json:"recorded,omitempty"`
	Rebuilt  string `json:"rebuilt,omitempty"`
}

// Reproduction is the record to keep of the check.
func (rr *RebuildReport) Reproduction() *kiln.Reproduction {
	r := &kiln.Reproduction{Version: rr.Version, Identical: rr.Identical, Digest: rr.Rebuilt, Elapsed: rr.Elapsed}
	if !rr.Identical {
		r.Summary = rr.summary(5)
	}
	r.DifferingFiles = len(rr.Files)
	for _, f := range rr.Files[:min(len(rr.Files), kiln.MaxReproductionFiles)] {
		r.Files = append(r.Files, kiln.DifferingFile{Path: f.Path, What: f.What, Step: f.Step})
	}
	return r
}

// String renders the report for people.
func (rr *RebuildReport) String() string {
	max := rr.maxFiles
	if max <= 0 {
		max = 20
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s rebuilt from its provenance (SOURCE_DATE_EPOCH %d, %s, from %s) in %s\n",
		rr.Version, rr.Epoch.Unix(), rr.Epoch.UTC().Format(time.RFC3339), rr.From, rr.Elapsed.Round(100*time.Millisecond))
	if rr.Identical {
		fmt.Fprintf(&b, "identical: %s, bit for bit\n", rr.Recorded)
	} else {
		fmt.Fprintf(&b, "different: recorded %s, rebuilt %s\n", rr.Recorded, rr.Rebuilt)
		b.WriteString(rr.summary(max))
	}
	for _, n := range rr.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if rr.Diffoscope != "" {
		b.WriteString("\ndiffoscope:\n")
		b.WriteString(rr.Diffoscope)
		if !strings.HasSuffix(rr.Diffoscope, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// summary lists the counts, the first max differing files with the step
// that wrote each, the steps involved, and the package differences.
func (rr *RebuildReport) summary(max int) string {
	var b strings.Builder
	only := map[string]int{}
	steps := map[string]int{}
	for _, f := range rr.Files {
		switch f.What[0] {
		case "only in recorded", "only in rebuilt":
			only[f.What[0]]++
		default:
			only["changed"]++
		}
		if f.Step != "" {
			steps[f.Step]++
		}
	}
	fmt.Fprintf(&b, "%d files differ (%d changed, %d only in recorded, %d only in rebuilt)", len(rr.Files), only["changed"], only["only in recorded"], only["only in rebuilt"])
	if len(rr.Files) > max {
		fmt.Fprintf(&b, "; the first %d", max)
	}
	b.WriteString(":\n")
	for i, f := range rr.Files {
		if i == max {
			break
		}
		fmt.Fprintf(&b, "  /%s  %s", f.Path, strings.Join(f.What, ", "))
		if f.Step != "" {
			fmt.Fprintf(&b, "  (written by %s)", f.Step)
		}
		b.WriteString("\n")
	}
	if len(steps) > 0 {
		b.WriteString("steps that wrote differing files:\n")
		for _, s := range slices.Sorted(maps.Keys(steps)) {
			fmt.Fprintf(&b, "  %s: %d files\n", s, steps[s])
		}
	}
	if len(rr.Packages) > 0 {
		fmt.Fprintf(&b, "%d packages differ from the recorded manifest:\n", len(rr.Packages))
		for _, p := range rr.Packages {
			fmt.Fprintf(&b, "  %s  recorded %s, rebuilt %s\n", p.Name, orNone(p.Recorded), orNone(p.Rebuilt))
		}
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// packageDiffs lists packages whose versions differ, by name and architecture.
func packageDiffs(recorded, rebuilt []kiln.Package) []PackageDiff {
	key := func(p kiln.Package) string { return p.Name + ":" + p.Architecture }
	a, b := map[string]string{}, map[string]string{}
	for _, p := range recorded {
		a[key(p)] = p.Version
	}
	for _, p := range rebuilt {
		b[key(p)] = p.Version
	}
	names := map[string]bool{}
	for k := range a {
		names[k] = true
	}
	for k := range b {
		names[k] = true
	}
	var out []PackageDiff
	for _, k := range slices.Sorted(maps.Keys(names)) {
		if a[k] != b[k] {
			out = append(out, PackageDiff{Name: k, Recorded: a[k], Rebuilt: b[k]})
		}
	}
	return out
}

// tarEntry is what the comparison keeps of one tar entry.
type tarEntry struct {
	typ      byte
	mode     int64
	uid, gid int
	mtime    int64
	size     int64
	link     string
	digest   string
	xattrs   string
}

// indexArtifact reads artifact a — a single tar, or a stack of layers
// applied bottom first with their OCI whiteouts — and keeps every entry's
// metadata and content digest, by name.
func indexArtifact(ctx context.Context, store kiln.ArtifactStore, a *kiln.Artifact) (map[string]tarEntry, error) {
	ls, err := layer.Layers(ctx, store, a)
	if err != nil {
		return nil, err
	}
	out := map[string]tarEntry{}
	for _, l := range ls {
		rc, err := layer.Open(ctx, store, l)
		if err != nil {
			return nil, err
		}
		err = indexTar(ctx, rc, out)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
	}
	return out, nil
}

// indexTar reads one tar (a layer) into out: entries replace what lower
// layers had, a whiteout ".wh.NAME" removes NAME and what is beneath it,
// an opaque marker ".wh..wh..opq" what its directory held before.
func indexTar(ctx context.Context, rd io.Reader, out map[string]tarEntry) error {
	tr := tar.NewReader(rd)
	for n := 0; ; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		dir, base := path.Split(name)
		if base == ".wh..wh..opq" {
			removeUnder(out, strings.TrimSuffix(dir, "/"), false)
			continue
		}
		if gone, ok := strings.CutPrefix(base, ".wh."); ok {
			removeUnder(out, dir+gone, true)
			continue
		}
		e := tarEntry{typ: h.Typeflag, mode: h.Mode, uid: h.Uid, gid: h.Gid, mtime: h.ModTime.Unix(), size: h.Size, link: h.Linkname}
		var xs []string
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				xs = append(xs, k+"="+v)
			}
		}
		sort.Strings(xs)
		e.xattrs = strings.Join(xs, "\x00")
		if h.Typeflag == tar.TypeReg {
			sum := sha256.New()
			if _, err := io.Copy(sum, tr); err != nil {
				return err
			}
			e.digest = hex.EncodeToString(sum.Sum(nil))
		}
		if old, ok := out[name]; ok && old.typ == tar.TypeDir && h.Typeflag != tar.TypeDir {
			removeUnder(out, name, false) // a file replacing a directory hides its contents
		}
		out[name] = e
	}
}

// removeUnder deletes what lies beneath p (and p itself when self).
func removeUnder(out map[string]tarEntry, p string, self bool) {
	if self {
		delete(out, p)
	}
	prefix := p + "/"
	if p == "" {
		prefix = ""
	}
	for k := range out {
		if strings.HasPrefix(k, prefix) && k != p {
			delete(out, k)
		}
	}
}

// diffEntries compares two indexes; the result is sorted by path.
func diffEntries(recorded, rebuilt map[string]tarEntry) []FileDiff {
	names := map[string]bool{}
	for k := range recorded {
		names[k] = true
	}
	for k := range rebuilt {
		names[k] = true
	}
	var out []FileDiff
	for _, name := range slices.Sorted(maps.Keys(names)) {
		a, inA := recorded[name]
		b, inB := rebuilt[name]
		var what []string
		switch {
		case !inB:
			what = []string{"only in recorded"}
		case !inA:
			what = []string{"only in rebuilt"}
		default:
			if a.typ != b.typ {
				what = append(what, "type")
			}
			if a.digest != b.digest {
				what = append(what, "content")
			} else if a.size != b.size {
				what = append(what, "size")
			}
			if a.link != b.link {
				what = append(what, "link target")
			}
			if a.mode != b.mode {
				what = append(what, "mode")
			}
			if a.uid != b.uid || a.gid != b.gid {
				what = append(what, "owner")
			}
			if a.mtime != b.mtime {
				what = append(what, "mtime")
			}
			if a.xattrs != b.xattrs {
				what = append(what, "xattrs")
			}
		}
		if len(what) > 0 {
			out = append(out, FileDiff{Path: name, What: what})
		}
	}
	return out
}

// compareArtifacts fills the report's file differences, names the step
// that wrote each, and runs diffoscope on the first differing files.
func (r *run) compareArtifacts(ctx context.Context, rep *RebuildReport, max int) error {
	rep.maxFiles = max
	a, err := indexArtifact(ctx, r.b.Artifacts, rep.recorded)
	if err != nil {
		return fmt.Errorf("read the recorded artifact: %w", err)
	}
	b, err := indexArtifact(ctx, r.b.Artifacts, rep.rebuilt)
	if err != nil {
		return fmt.Errorf("read the rebuilt artifact: %w", err)
	}
	rep.Files = diffEntries(a, b)
	rep.Notes = append(rep.Notes, layerNotes(rep.recorded, rep.rebuilt)...)
	for i := range rep.Files {
		rep.Files[i].Step = r.stepOf(rep.Files[i].Path)
	}
	rep.Diffoscope = r.diffoscope(ctx, rep)
	return nil
}

// stepOf names the topmost layer of the rebuild that holds path: the
// release step, a definition step, or the start layer.
func (r *run) stepOf(path string) string {
	has := func(tree string) bool {
		if tree == "" {
			return false
		}
		_, err := os.Lstat(filepath.Join(tree, filepath.FromSlash(path)))
		return err == nil
	}
	if r.finalKey != "" && has(r.cache.tree(r.finalKey)) {
		return "the release step (/etc/kiln-release, the agent, per-build files removed)"
	}
	first := len(r.keys) - len(r.steps)
	for i := len(r.keys) - 1; i >= 0; i-- {
		if !has(r.cache.tree(r.keys[i])) {
			continue
		}
		if i >= first {
			return r.steps[i-first].name
		}
		if r.startDigest == "" {
			return "the bootstrap (mmdebstrap)"
		}
		return "the start layer (" + r.startDigest[:19] + ")"
	}
	return ""
}

// diffoscopeFiles and diffoscopeTimeout bound the diffoscope run.
const (
	diffoscopeFiles   = 3
	diffoscopeMaxSize = 16 << 20
	diffoscopeTimeout = 2 * time.Minute
	diffoscopeOutput  = 16 << 10
)

// diffoscope runs Debian's diffoscope, when installed, on the first few
// files whose content differs, extracted from both artifacts; "" when it
// is not installed or nothing differs in content.
func (r *run) diffoscope(ctx context.Context, rep *RebuildReport) string {
	bin, err := exec.LookPath("diffoscope")
	if err != nil {
		return ""
	}
	want := map[string]bool{}
	for _, f := range rep.Files {
		if slices.Contains(f.What, "content") && len(want) < diffoscopeFiles {
			want[f.Path] = true
		}
	}
	if len(want) == 0 {
		return ""
	}
	dir, err := os.MkdirTemp(r.b.DataDir, ".diffoscope-")
	if err != nil {
		return ""
	}
	defer os.RemoveAll(dir)
	for side, a := range map[string]*kiln.Artifact{"recorded": rep.recorded, "rebuilt": rep.rebuilt} {
		if err := extractSome(ctx, r.b.Artifacts, a, want, filepath.Join(dir, side)); err != nil {
			return "diffoscope not run: " + err.Error()
		}
	}
	dctx, cancel := context.WithTimeout(ctx, diffoscopeTimeout)
	defer cancel()
	// The extracted copies carry no metadata worth comparing (the tar
	// comparison above has it): only their content.
	cmd := exec.CommandContext(dctx, bin, "--no-progress", "--exclude-directory-metadata=recursive", "--text", "-", filepath.Join(dir, "recorded"), filepath.Join(dir, "rebuilt"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run() // exit status 1 means "differences found"
	s := strings.ReplaceAll(out.String(), dir+"/", "")
	if len(s) > diffoscopeOutput {
		s = s[:diffoscopeOutput] + "\n[… diffoscope's output cut at 16 KiB]\n"
	}
	return s
}

// extractSome writes the named regular files (at most diffoscopeMaxSize
// each) of artifact a under dir, flattened to safe names; of a layered
// artifact, the topmost layer's copy wins.
func extractSome(ctx context.Context, store kiln.ArtifactStore, a *kiln.Artifact, want map[string]bool, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ls, err := layer.Layers(ctx, store, a)
	if err != nil {
		return err
	}
	for _, l := range ls {
		rc, err := layer.Open(ctx, store, l)
		if err != nil {
			return err
		}
		err = extractFrom(rc, want, dir)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func extractFrom(rd io.Reader, want map[string]bool, dir string) error {
	tr := tar.NewReader(rd)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(h.Name, "./")
		if !want[name] || h.Typeflag != tar.TypeReg {
			continue
		}
		f, err := os.Create(filepath.Join(dir, strings.ReplaceAll(name, "/", "__")))
		if err != nil {
			return err
		}
		_, err = io.Copy(f, io.LimitReader(tr, diffoscopeMaxSize))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
}

// layerNotes says how two layered artifacts' layer lists differ when the
// files alone may not show it: another number of layers, or a layer with
// the same content (diff ID) in another blob (its compression).
func layerNotes(recorded, rebuilt *kiln.Artifact) []string {
	if recorded == nil || rebuilt == nil || len(recorded.Layers) == 0 || len(rebuilt.Layers) == 0 {
		return nil
	}
	var notes []string
	if len(recorded.Layers) != len(rebuilt.Layers) {
		notes = append(notes, fmt.Sprintf("the recorded artifact has %d layers, the rebuilt one %d", len(recorded.Layers), len(rebuilt.Layers)))
	}
	for i := range min(len(recorded.Layers), len(rebuilt.Layers)) {
		a, b := recorded.Layers[i], rebuilt.Layers[i]
		switch {
		case a.DiffID != b.DiffID:
			notes = append(notes, fmt.Sprintf("layer %d: content differs (diff ID %s recorded, %s rebuilt)", i+1, a.DiffID, b.DiffID))
		case a.Digest != b.Digest || a.MediaType != b.MediaType || a.Size != b.Size:
			notes = append(notes, fmt.Sprintf("layer %d: same content (diff ID %s) in another blob: %s %s (%d bytes) recorded, %s %s (%d bytes) rebuilt",
				i+1, a.DiffID, a.Digest, a.MediaType, a.Size, b.Digest, b.MediaType, b.Size))
		}
	}
	return notes
}
