package build

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"

	"github.com/kiln-project/kiln"
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

	type listing struct {
		files map[string]*FileInfo
		err   error
	}
	ch := make(chan listing, 1)
	go func() {
		f, err := listArtifact(ctx, store, va.Provenance.Artifact.Digest)
		ch <- listing{f, err}
	}()
	fb, errB := listArtifact(ctx, store, vb.Provenance.Artifact.Digest)
	la := <-ch
	if la.err != nil {
		return nil, fmt.Errorf("read artifact of %s: %w", va.Name, la.err)
	}
	if errB != nil {
		return nil, fmt.Errorf("read artifact of %s: %w", vb.Name, errB)
	}
	res.Files = diffFiles(la.files, fb)
	return res, nil
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

// listArtifact reads an artifact's tar listing, hashing file contents.
func listArtifact(ctx context.Context, store kiln.ArtifactStore, digest string) (map[string]*FileInfo, error) {
	r, err := store.Open(ctx, digest)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := map[string]*FileInfo{}
	tr := tar.NewReader(r)
	h := sha256.New()
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		name := hdr.Name
		if len(name) > 1 && name[len(name)-1] == '/' {
			name = name[:len(name)-1]
		}
		fi := &FileInfo{Mode: fmt.Sprintf("%04o", hdr.Mode&0o7777), UID: hdr.Uid, GID: hdr.Gid}
		switch hdr.Typeflag {
		case tar.TypeReg:
			fi.Type, fi.Size = "file", hdr.Size
			h.Reset()
			if _, err := io.Copy(h, tr); err != nil {
				return nil, err
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
		out[name] = fi
	}
	// Read to the end so the store verifies the digest.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, err
	}
	return out, r.Close()
}
