package build

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"path"
	"sort"
	"strings"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/layer"
)

// Change says how a package or file differs between two versions.
type Change string

const (
	Added   Change = "added"
	Removed Change = "removed"
	Changed Change = "changed"
)

// PackageChange is one package that differs.
type PackageChange struct {
	Name         string `json:"name"`
	Architecture string `json:"architecture"`
	Change       Change `json:"change"`
	From         string `json:"from,omitempty"` // version in the first image
	To           string `json:"to,omitempty"`   // version in the second image
}

// FileInfo is what Diff compares of a file.
type FileInfo struct {
	Type   string `json:"type"` // file, dir, symlink, hardlink, fifo
	Mode   string `json:"mode"` // octal permission and set-id bits
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	Link   string `json:"link,omitempty"`
}

// FileChange is one path that differs.
type FileChange struct {
	Path   string    `json:"path"`
	Change Change    `json:"change"`
	From   *FileInfo `json:"from,omitempty"`
	To     *FileInfo `json:"to,omitempty"`
}

// DiffResult lists what changed from one version to another.
type DiffResult struct {
	From     kiln.VersionRef `json:"from"`
	To       kiln.VersionRef `json:"to"`
	Packages []PackageChange `json:"packages"`
	Files    []FileChange    `json:"files"`
}

// Diff compares two versions: packages added, removed or changed (from
// their recorded manifests) and files added, removed or changed (type,
// mode, owner, size, content digest or link target, from their
// artifacts). Both artifacts must be in the store.
func Diff(ctx context.Context, reg kiln.Registry, store kiln.ArtifactStore, a, b kiln.VersionRef) (*DiffResult, error) {
	va, err := reg.FindVersion(ctx, a)
	if err != nil {
		return nil, err
	}
	vb, err := reg.FindVersion(ctx, b)
	if err != nil {
		return nil, err
	}
	for _, v := range []*kiln.Version{va, vb} {
		if v.Provenance.Artifact == nil {
			return nil, kiln.Errorf(kiln.EINVALID, "%s has no artifact to compare (it was registered by hand)", v.Name)
		}
	}
	res := &DiffResult{From: a, To: b, Packages: diffPackages(va.Provenance.Packages, vb.Provenance.Packages)}

	fa, fb, err := listArtifacts(ctx, store, va, vb)
	if err != nil {
		return nil, err
	}
	res.Files = diffFiles(fa, fb)
	return res, nil
}

// listArtifacts lists the merged trees of two versions' artifacts. The
// layers both stacks start with (a child and its parent or base, two
// images on one base) are read once.
func listArtifacts(ctx context.Context, store kiln.ArtifactStore, va, vb *kiln.Version) (map[string]*FileInfo, map[string]*FileInfo, error) {
	la, err := layer.Layers(ctx, store, va.Provenance.Artifact)
	if err != nil {
		return nil, nil, fmt.Errorf("read artifact of %s: %w", va.Name, err)
	}
	lb, err := layer.Layers(ctx, store, vb.Provenance.Artifact)
	if err != nil {
		return nil, nil, fmt.Errorf("read artifact of %s: %w", vb.Name, err)
	}
	n := 0
	for n < len(la) && n < len(lb) && la[n].Digest == lb[n].Digest {
		n++
	}
	shared := map[string]*FileInfo{}
	for _, l := range la[:n] {
		if err := applyLayer(ctx, store, l, shared); err != nil {
			return nil, nil, fmt.Errorf("read artifact of %s: %w", va.Name, err)
		}
	}
	fa, fb := maps.Clone(shared), shared
	ch := make(chan error, 1)
	go func() {
		for _, l := range la[n:] {
			if err := applyLayer(ctx, store, l, fa); err != nil {
				ch <- fmt.Errorf("read artifact of %s: %w", va.Name, err)
				return
			}
		}
		ch <- nil
	}()
	var errB error
	for _, l := range lb[n:] {
		if errB = applyLayer(ctx, store, l, fb); errB != nil {
			errB = fmt.Errorf("read artifact of %s: %w", vb.Name, errB)
			break
		}
	}
	if errA := <-ch; errA != nil {
		return nil, nil, errA
	}
	if errB != nil {
		return nil, nil, errB
	}
	return fa, fb, nil
}

// The OCI whiteouts a layer marks deletions with.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// applyLayer reads a layer's tar listing into files, hashing file
// contents: its entries replace what lower layers listed, its whiteouts
// remove paths (and what is beneath them), an opaque marker what lower
// layers listed in its directory.
func applyLayer(ctx context.Context, store kiln.ArtifactStore, l kiln.Layer, files map[string]*FileInfo) error {
	r, err := layer.Open(ctx, store, l)
	if err != nil {
		return err
	}
	defer r.Close()
	removeUnder := func(dir string, keep map[string]bool) {
		for p := range files {
			if (dir == "." || strings.HasPrefix(p, dir+"/")) && !keep[p] {
				delete(files, p)
			}
		}
	}
	written := map[string]bool{}
	tr := tar.NewReader(r)
	h := sha256.New()
	for n := 0; ; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
		if name == "." {
			continue
		}
		dir, base := path.Split(name)
		dir = path.Clean(dir)
		switch {
		case base == whiteoutOpaque:
			removeUnder(dir, written)
			continue
		case strings.HasPrefix(base, whiteoutPrefix):
			gone := path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))
			delete(files, gone)
			removeUnder(gone, nil)
			continue
		}
		fi := &FileInfo{Mode: fmt.Sprintf("%04o", hdr.Mode&0o7777), UID: hdr.Uid, GID: hdr.Gid}
		switch hdr.Typeflag {
		case tar.TypeReg:
			fi.Type, fi.Size = "file", hdr.Size
			h.Reset()
			if _, err := io.Copy(h, tr); err != nil {
				return err
			}
			fi.SHA256 = hex.EncodeToString(h.Sum(nil))
		case tar.TypeDir:
			fi.Type = "dir"
		case tar.TypeSymlink:
			fi.Type, fi.Link = "symlink", hdr.Linkname
		case tar.TypeLink:
			fi.Type, fi.Link = "hardlink", hdr.Linkname
		case tar.TypeFifo:
			fi.Type = "fifo"
		default:
			fi.Type = string(hdr.Typeflag)
		}
		files[name] = fi
		written[name] = true
	}
	// Read to the end so the digest and diff ID are verified.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	return r.Close()
}
func diffPackages(a, b []kiln.Package) []PackageChange {
	key := func(p kiln.Package) string { return p.Name + ":" + p.Architecture }
	ma := map[string]kiln.Package{}
	for _, p := range a {
		ma[key(p)] = p
	}
	mb := map[string]kiln.Package{}
	for _, p := range b {
		mb[key(p)] = p
	}
	var out []PackageChange
	for k, p := range ma {
		q, ok := mb[k]
		switch {
		case !ok:
			out = append(out, PackageChange{Name: p.Name, Architecture: p.Architecture, Change: Removed, From: p.Version})
		case q.Version != p.Version:
			out = append(out, PackageChange{Name: p.Name, Architecture: p.Architecture, Change: Changed, From: p.Version, To: q.Version})
		}
	}
	for k, q := range mb {
		if _, ok := ma[k]; !ok {
			out = append(out, PackageChange{Name: q.Name, Architecture: q.Architecture, Change: Added, To: q.Version})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Architecture < out[j].Architecture
	})
	return out
}

func diffFiles(a, b map[string]*FileInfo) []FileChange {
	var out []FileChange
	for p, fa := range a {
		fb, ok := b[p]
		switch {
		case !ok:
			out = append(out, FileChange{Path: p, Change: Removed, From: fa})
		case *fa != *fb:
			out = append(out, FileChange{Path: p, Change: Changed, From: fa, To: fb})
		}
	}
	for p, fb := range b {
		if _, ok := a[p]; !ok {
			out = append(out, FileChange{Path: p, Change: Added, To: fb})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}
