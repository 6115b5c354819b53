package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/debian"
	"github.com/kiln-project/kiln/definition"
)

// aptSource is an image's apt_source with what the build read of it.
type aptSource struct {
	*definition.AptSource
	release *debian.Release
	// keyDigest is the key file's digest, read when the build started.
	keyDigest string
	key       []byte
}

// AptSourceRef is how an apt source is named among a version's sources
// (kind config-code; its digest is the repository's Release file's).
func AptSourceRef(s *definition.AptSource) string {
	return "apt-source " + s.Name + ": " + s.Line()
}

// readAptSources fetches each apt source's Release file (its digest is
// an input: a new publication is a new build) and reads its key, and adds
// both to the build's sources.
func (r *run) readAptSources(ctx context.Context) error {
	for _, s := range r.img.AptSources {
		rel, err := debian.FetchRelease(ctx, r.b.HTTP, s.URL, s.Suite)
		if err != nil {
			return fmt.Errorf("apt_source %q (%s): %w", s.Name, pos(s), err)
		}
		as := &aptSource{AptSource: s, release: rel}
		r.sources = append(r.sources, kiln.Source{Kind: kiln.SourceConfig, Ref: AptSourceRef(s), Digest: rel.Digest})
		if s.SignedByPath != "" {
			if as.key, err = os.ReadFile(s.SignedByPath); err != nil {
				return fmt.Errorf("apt_source %q (%s): read its key: %w", s.Name, pos(s), err)
			}
			if as.keyDigest, err = fileDigest(s.SignedByPath); err != nil {
				return err
			}
			r.sources = append(r.sources, kiln.Source{Kind: kiln.SourceConfig, Ref: s.SignedBy, Digest: as.keyDigest})
		}
		r.aptSources = append(r.aptSources, as)
	}
	return nil
}

func pos(s *definition.AptSource) string {
	return fmt.Sprintf("%s:%d", s.Range.Filename, s.Range.Start.Line)
}

// aptSourcesDigest is what the apt step's cache key takes from the apt
// sources: their lines, Release files and keys.
func (r *run) aptSourcesDigest() []string {
	var out []string
	for _, s := range r.aptSources {
		out = append(out, s.Line()+"|"+s.release.Digest+"|"+s.keyDigest)
	}
	return out
}

// writeAptSources puts the sources' list files and keys into root before
// the apt step runs, so apt-get update reads them; they stay in the image
// (its apt keeps seeing where its packages came from).
func (r *run) writeAptSources(root string) error {
	for _, s := range r.aptSources {
		if len(s.key) > 0 {
			if err := writeRootFile(root, s.KeyringPath(), s.key); err != nil {
				return err
			}
		}
		if err := writeRootFile(root, s.ListPath(), []byte(s.Line()+"\n")); err != nil {
			return err
		}
	}
	return nil
}

func writeRootFile(root, p string, data []byte) error {
	dst := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	// A symlink planted by the image must not redirect the write.
	if fi, err := os.Lstat(dst); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("%s is a symlink in the image; refusing to write the apt source through it", p)
	}
	return os.WriteFile(dst, data, 0o644)
}
