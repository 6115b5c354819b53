package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/sign"
)

// exportExt is the file name extension an exported artifact gets by default.
var exportExt = map[kiln.ArtifactFormat]string{kiln.FormatRootfs: ".tar", kiln.FormatQCOW2: ".qcow2", kiln.FormatRaw: ".raw"}

// exported is what `kiln version export` reports.
type exported struct {
	Version string
	Format  kiln.ArtifactFormat
	Digest  string
	Size    int64
	Path    string
}

func (a *App) versionExportCmd() *cobra.Command {
	var format, out string
	var force bool
	c := &cobra.Command{
		Use:   "export IMAGE-N --format rootfs|qcow2|raw",
		Short: "Write a version's artifact (root filesystem or disk image) to a file, verified",
		Long: "Write one artifact of a version to a file: its root filesystem tarball (rootfs) or a bootable disk image (qcow2, raw) " +
			"built because its image line declares formats = [\"qcow2\"] or [\"raw\"]. The version's signed provenance is checked first, " +
			"and the artifact's digest while it is copied; the file appears under its name only when both hold. " +
			"Revoked versions and external ones (a Packer AMI, which kiln does not hold) are refused. " +
			"docs/vm.md shows how to import a disk image into libvirt, Proxmox, OpenStack and AWS.",
		Example: "  kiln version export appserver-3 --format qcow2 -o appserver-3.qcow2\n" +
			"  kiln version export appserver-3 --format raw          # writes ./appserver-3.raw\n" +
			"  kiln version export appserver-3 --format rootfs -o - | tar -t",
		Args: exactArgs(1, "a version name such as appserver-3"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := kiln.ParseVersionRef("version", args[0])
			if err != nil {
				return err
			}
			if a.cfg.Server != "" {
				return kiln.Errorf(kiln.EINVALID, "`kiln version export` reads the artifact store, which stays on the server; run it on the server's machine without --server")
			}
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			if svc.Artifacts == nil || svc.Signer == nil {
				return kiln.Errorf(kiln.EUNAVAILABLE, "this kiln has no artifact store or signing key to export with; run it where the versions are built")
			}
			v, err := svc.Registry.FindVersion(cmd.Context(), ref)
			if err != nil {
				return err
			}
			if format == "" {
				return kiln.FieldErrorf(kiln.EINVALID, "format", "give --format: %s has %s", v.Name, formatList(v.ArtifactFormats()))
			}
			f, err := kiln.ParseArtifactFormat("format", format)
			if err != nil {
				return err
			}
			art, err := v.Exportable(f)
			if err != nil {
				return err
			}
			keys, _ := signerKeys(svc.Signer)
			if err := sign.CheckVersion(cmd.Context(), svc.Registry, nil, keys, v, false); err != nil {
				return fmt.Errorf("refusing to export: %w", err)
			}
			if out == "" {
				out = v.Name + exportExt[f]
			}
			res := exported{Version: v.Name, Format: f, Digest: art.Digest, Size: art.Size, Path: out}
			if out == "-" {
				if err := copyArtifact(cmd.Context(), svc.Artifacts, art, cmd.OutOrStdout()); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: wrote %s %s (%d bytes) to standard output; signature and digest verified\n", v.Name, f, art.Digest, art.Size)
				return nil
			}
			if err := exportFile(cmd.Context(), svc.Artifacts, art, out, force, f == kiln.FormatRaw); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: wrote %s to %s (%s, %d bytes); signature and digest verified\n", res.Version, res.Format, res.Path, res.Digest, res.Size)
			return err
		},
	}
	c.Flags().StringVar(&format, "format", "", "which artifact: rootfs, qcow2 or raw")
	// -o names the file here, as for curl and qemu-img; it shadows the
	// global --output (table|json) on this one command.
	c.Flags().StringVarP(&out, "output", "o", "", "file to write (default IMAGE-N.tar|.qcow2|.raw in the current directory; - for standard output)")
	c.Flags().BoolVar(&force, "force", false, "replace FILE if it exists")
	return c
}

func formatList(fs []kiln.ArtifactFormat) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// copyArtifact copies art from the store to w; the store's reader checks
// the digest, and a mismatch is an error naming it.
func copyArtifact(ctx context.Context, arts kiln.ArtifactStore, art *kiln.Artifact, w io.Writer) error {
	rc, err := arts.Open(ctx, art.Digest)
	if err != nil {
		return err
	}
	n, err := io.Copy(w, rc)
	cerr := rc.Close()
	if err == nil {
		err = cerr
	}
	if err != nil {
		return kiln.Errorf(kiln.ECONFLICT, "the stored artifact %s does not verify (%v); nothing usable was written", art.Digest, err)
	}
	if art.Size > 0 && n != art.Size {
		return kiln.Errorf(kiln.ECONFLICT, "the stored artifact %s is %d bytes, the version records %d", art.Digest, n, art.Size)
	}
	return nil
}

// exportFile writes art to path through a temporary file beside it, renamed
// only once the digest checked out. A raw disk image is written sparse.
func exportFile(ctx context.Context, arts kiln.ArtifactStore, art *kiln.Artifact, path string, force, sparse bool) error {
	if _, err := os.Lstat(path); err == nil && !force {
		return kiln.Errorf(kiln.ECONFLICT, "%s exists; give another -o FILE or --force to replace it", path)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	var w io.Writer = tmp
	if sparse {
		w = &sparseWriter{f: tmp}
	}
	if err := copyArtifact(ctx, arts, art, w); err != nil {
		tmp.Close()
		return err
	}
	if sw, ok := w.(*sparseWriter); ok {
		if err := sw.finish(); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// sparseWriter writes a file leaving holes where whole blocks are zero, as
// a raw disk image mostly is.
type sparseWriter struct {
	f   *os.File
	off int64
	buf []byte
}

const sparseBlock = 64 << 10

var zeroBlock = make([]byte, sparseBlock)

func (s *sparseWriter) Write(p []byte) (int, error) {
	n := len(p)
	s.buf = append(s.buf, p...)
	for len(s.buf) >= sparseBlock {
		if err := s.block(s.buf[:sparseBlock]); err != nil {
			return 0, err
		}
		s.buf = s.buf[sparseBlock:]
	}
	return n, nil
}

func (s *sparseWriter) block(b []byte) error {
	if !bytes.Equal(b, zeroBlock[:len(b)]) {
		if _, err := s.f.WriteAt(b, s.off); err != nil {
			return err
		}
	}
	s.off += int64(len(b))
	return nil
}

// finish writes what is buffered and sets the file's length.
func (s *sparseWriter) finish() error {
	if len(s.buf) > 0 {
		if err := s.block(s.buf); err != nil {
			return err
		}
		s.buf = nil
	}
	return s.f.Truncate(s.off)
}
