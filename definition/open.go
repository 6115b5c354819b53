package definition

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	kiln "github.com/kiln-project/kiln"
)

// OpenEstateFile opens a file the loader resolved (abs, below the estate
// directory dir) for reading at build time. The estate was checked when it
// loaded; between then and now a file could have been replaced by a symlink
// that leads out of the estate, or rewritten. So the file is opened beneath
// a handle on the estate directory (os.Root: no path, symlink or ".."
// leaves it), and the returned reader fails at the end of the content when
// the bytes do not have the digest recorded at load ("sha256:…"). A caller
// must treat a read error as "nothing was copied".
func OpenEstateFile(dir, abs, digest string) (io.ReadCloser, error) {
	if dir == "" || digest == "" {
		return nil, fmt.Errorf("estate file %s has no estate directory or load-time digest; load the estate with definition.Load", abs)
	}
	rel, err := filepath.Rel(dir, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, kiln.Errorf(kiln.EINVALID, "%s is outside the estate directory %s", abs, dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, kiln.Errorf(kiln.EINVALID, "open the estate directory %s: %v", dir, err)
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		return nil, kiln.Errorf(kiln.EINVALID, "open %s beneath the estate %s: %v; the file changed since the estate was loaded (a symlink out of the estate is refused), run the build again", rel, dir, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, kiln.Errorf(kiln.EINVALID, "%s in the estate %s is no longer a regular file; run the build again", rel, dir)
	}
	return &digestReader{f: f, h: sha256.New(), rel: rel, want: digest}, nil
}

// ReadEstateFile reads a whole estate file through OpenEstateFile.
func ReadEstateFile(dir, abs, digest string) ([]byte, error) {
	r, err := OpenEstateFile(dir, abs, digest)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// digestReader reads a file and, at its end, compares what it read with
// the digest recorded when the estate loaded.
type digestReader struct {
	f    *os.File
	h    hash.Hash
	rel  string
	want string
}

func (r *digestReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	if err == io.EOF {
		if got := "sha256:" + hex.EncodeToString(r.h.Sum(nil)); got != r.want {
			return n, kiln.Errorf(kiln.ECONFLICT, "%s changed since the estate was loaded (now %s, loaded as %s); run the build again", r.rel, got, r.want)
		}
	}
	return n, err
}

func (r *digestReader) Close() error { return r.f.Close() }
