package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/layer"
	"github.com/kiln-project/kiln/internal/overlayfs"
)

// maxLowerBytes bounds the lower directories of an instance's overlay: the
// kernel takes one page of mount options, which also name the instance's
// upper and work directories.
const maxLowerBytes = 3000

// lowers returns the overlay lower directories an instance of artifact a
// runs on, top first. A single-tar artifact is one tree in the rootfs
// cache. A layered artifact is its layers, each unpacked once per diff ID
// into the layer cache (<data>/local/layers) and shared by every version
// that has it, stacked; a stack too deep for one mount option page is
// applied into one tree in the rootfs cache instead.
//
// The layer list is read from the store and checked against a.Digest (the
// digest the signed provenance names) and against the recorded layers;
// every layer is verified (blob digest and diff ID) while it is unpacked.
func (p *Platform) lowers(ctx context.Context, a kiln.Artifact) ([]string, error) {
	if !a.Layered() {
		dir, err := p.rootfs(ctx, a.Digest)
		if err != nil {
			return nil, err
		}
		return []string{dir}, nil
	}
	if err := kiln.ValidateDigest("artifact.digest", a.Digest); err != nil {
		return nil, err
	}
	ls, err := layer.Layers(ctx, p.artifacts, &a)
	if err != nil {
		return nil, err
	}
	if n := len(ls) * (len(p.layerDir(ls[0])) + 1); n > maxLowerBytes {
		dir, err := p.flatRootfs(ctx, a.Digest, ls)
		if err != nil {
			return nil, err
		}
		return []string{dir}, nil
	}
	trees, release := p.layerTrees(ctx, a, ls)
	defer release()
	dirs := make([]string, 0, len(ls))
	for i, l := range ls {
		d, err := p.unpackLayer(ctx, l, trees[i])
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, d)
	}
	slices.Reverse(dirs) // overlayfs lists the topmost lower first
	return dirs, nil
}

// layerDir is where layer l is unpacked: named by its diff ID, since the
// same tar unpacks to the same tree whatever its compression.
func (p *Platform) layerDir(l kiln.Layer) string {
	return filepath.Join(p.dataDir, "layers", strings.TrimPrefix(l.DiffID, "sha256:"))
}

// unpackLayer unpacks one layer into the layer cache (whiteouts as
// overlay whiteouts) unless it is there, verifying it as it reads; the
// tree is renamed into place only when complete and verified. Given the
// tree a build left of the layer (kiln.LayerTrees), it links that instead
// (linkLayer, verified against the diff ID too), and unpacks the blob only
// when the tree turns out not to be the layer.
func (p *Platform) unpackLayer(ctx context.Context, l kiln.Layer, tree string) (string, error) {
	dst := p.layerDir(l)
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if tree != "" {
		err := p.linkLayer(ctx, dst, tree, l)
		if err == nil {
			p.log.Info("linked layer from the build's tree", "diff_id", l.DiffID, "tree", tree)
			return dst, nil
		}
		if ctx.Err() != nil {
			return "", err
		}
		p.log.Warn("cannot take the build's tree of a layer; unpacking the layer instead", "diff_id", l.DiffID, "err", err)
	}
	return dst, p.unpackInto(ctx, dst, []kiln.Layer{l}, layer.ExtractOptions{Layer: true})
}

// layerTrees asks Config.Trees for the trees of the layers of a that are
// not in the layer cache yet; "" where there is none. A failure to ask
// only means unpacking: it is logged. release lets the trees go.
func (p *Platform) layerTrees(ctx context.Context, a kiln.Artifact, ls []kiln.Layer) ([]string, func()) {
	none := make([]string, len(ls))
	if p.trees == nil {
		return none, func() {}
	}
	missing := false
	for _, l := range ls {
		if _, err := os.Stat(p.layerDir(l)); err != nil {
			missing = true
			break
		}
	}
	if !missing {
		return none, func() {}
	}
	trees, release, err := p.trees.LayerTrees(ctx, a, ls)
	if err != nil || len(trees) != len(ls) {
		if release != nil {
			release()
		}
		if err != nil {
			p.log.Warn("cannot look for the build's trees of the layers; unpacking them", "digest", a.Digest, "err", err)
		}
		return none, func() {}
	}
	return trees, release
}

// flatRootfs applies the layers bottom first into one tree in the rootfs
// cache, under the artifact's digest.
func (p *Platform) flatRootfs(ctx context.Context, digest string, ls []kiln.Layer) (string, error) {
	dst := filepath.Join(p.dataDir, "rootfs", strings.TrimPrefix(digest, "sha256:"))
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	p.log.Info("applying a deep layer stack into one tree", "digest", digest, "layers", len(ls))
	return dst, p.unpackInto(ctx, dst, ls, layer.ExtractOptions{Apply: true})
}

// unpackInto extracts layers in order into a temporary directory beside
// dst (the pid in its name lets Reconcile tell an abandoned unpack from
// one in progress) and renames it to dst.
func (p *Platform) unpackInto(ctx context.Context, dst string, ls []kiln.Layer, opts layer.ExtractOptions) error {
	parent := filepath.Dir(dst)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("layer cache: %w", err)
	}
	base := filepath.Base(dst)
	tmp, err := os.MkdirTemp(parent, ".tmp-"+base[:min(12, len(base))]+"-"+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return fmt.Errorf("layer cache: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	for _, l := range ls {
		p.log.Info("unpacking layer", "digest", l.Digest, "diff_id", l.DiffID)
		r, err := layer.Open(ctx, p.artifacts, l)
		if err != nil {
			return err
		}
		err = layer.ExtractTar(ctx, r, tmp, opts)
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("unpack layer %s: %w", l.Digest, err)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		if _, serr := os.Stat(dst); serr == nil {
			return nil // another launch unpacked it first
		}
		return fmt.Errorf("layer cache: %w", err)
	}
	return nil
}

// lowerView returns one directory showing a layered instance's image: its
// only layer, or a read-only overlay of its layers (no upper directory)
// mounted at instances/<id>/lower, which Destroy unmounts with the rest.
func (p *Platform) lowerView(id string, lowers []string) (string, error) {
	for _, d := range lowers {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return "", kiln.Errorf(kiln.ENOTFOUND, "a layer of instance %s's image (%s) is gone from the layer cache; destroy the instance and launch it again", id, d)
		}
	}
	if len(lowers) == 1 {
		return lowers[0], nil
	}
	target := filepath.Join(p.instanceDir(id), lowerView)
	mounts, err := overlayfs.MountsUnder(target)
	if err != nil {
		return "", err
	}
	if slices.Contains(mounts, target) {
		return target, nil
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return "", err
	}
	if err := (&overlayfs.Overlay{Lowers: lowers, Target: target}).Mount(); err != nil {
		return "", fmt.Errorf("mount the image of instance %s read-only: %w", id, err)
	}
	return target, nil
}
