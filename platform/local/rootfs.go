package local

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kiln-project/kiln"
)

// rootfs returns the cached, unpacked root filesystem of the artifact with
// the given digest, unpacking it first if needed.
//
// The artifact is unpacked by the system tar (GNU tar, --numeric-owner
// --xattrs): a full Debian root holds device nodes, hard links, sparse files,
// file capabilities and ACLs in xattrs, which GNU tar restores exactly as
// mmdebstrap wrote them; archive/tar would leave all of that for kiln to
// re-implement. The stream is hashed on its way to tar and the result
// renamed into place only when tar succeeded and the digest matches, so the
// cache holds only complete, verified trees.
//
// An artifact is hostile input (an origin artifact is anyone's tarball).
// GNU tar keeps it inside dir: it refuses ".." member names, and creates a
// symlink whose target is absolute or climbs with ".." only after every
// other member, so no member is written through one
// (TestRootfsRefusesEscapes). Do not add -h, -P or
// --keep-directory-symlink.
func (p *Platform) rootfs(ctx context.Context, digest string) (string, error) {
	if err := kiln.ValidateDigest("artifact.digest", digest); err != nil {
		return "", err
	}
	hexd := strings.TrimPrefix(digest, "sha256:")
	dst := filepath.Join(p.dataDir, "rootfs", hexd)
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return "", fmt.Errorf("rootfs cache: %w", err)
	}
	// The pid in the name lets Reconcile tell an abandoned unpack from one in
	// progress in another kiln process.
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".tmp-"+hexd[:12]+"-"+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", fmt.Errorf("rootfs cache: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed

	p.log.Info("unpacking artifact", "digest", digest, "dir", dst)
	if err := p.unpack(ctx, digest, tmp); err != nil {
		return "", err
	}
	// Mode of the root as in the image (MkdirTemp made it 0700).
	if err := os.Rename(tmp, dst); err != nil {
		if _, serr := os.Stat(dst); serr == nil {
			return dst, nil // another launch unpacked it first
		}
		return "", fmt.Errorf("rootfs cache: %w", err)
	}
	return dst, nil
}

// unpack extracts the artifact into dir and checks its digest.
func (p *Platform) unpack(ctx context.Context, digest, dir string) error {
	r, err := p.artifacts.Open(ctx, digest)
	if err != nil {
		return fmt.Errorf("open artifact %s: %w", digest, err)
	}
	defer r.Close()

	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "tar", "--extract", "--file=-", "--directory="+dir,
		"--numeric-owner", "--same-permissions", "--same-owner",
		"--xattrs", "--xattrs-include=*")
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("unpack artifact %s: start tar: %w", digest, err)
	}
	h := sha256.New()
	_, copyErr := io.Copy(stdin, io.TeeReader(r, h))
	stdin.Close()
	// tar may stop reading at the end-of-archive blocks; read the rest so the
	// digest covers every byte.
	if copyErr != nil {
		_, err := io.Copy(h, r)
		if err != nil {
			copyErr = err
		} else if isPipeErr(copyErr) {
			copyErr = nil
		}
	}
	waitErr := cmd.Wait()
	closeErr := r.Close()
	if err := ctx.Err(); err != nil {
		return err
	}
	if copyErr != nil {
		return fmt.Errorf("unpack artifact %s: read: %w", digest, copyErr)
	}
	if closeErr != nil {
		return fmt.Errorf("unpack artifact %s: %w", digest, closeErr)
	}
	if waitErr != nil {
		return fmt.Errorf("unpack artifact %s: tar: %w: %s", digest, waitErr, strings.TrimSpace(stderr.String()))
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return kiln.Errorf(kiln.EINTERNAL, "artifact %s is corrupt: its content hashes to %s; rebuild the version or restore the artifact store", digest, got)
	}
	return nil
}

func isPipeErr(err error) bool {
	return errors.Is(err, os.ErrClosed) || strings.Contains(err.Error(), "broken pipe")
}
