package api

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/sign"
)

// The headers an exported artifact carries besides Content-Type,
// Content-Length and Content-Disposition: the book's names travel with the
// bytes, so whoever imports the disk can tag it (docs/vm.md).
const (
	HeaderImage         = "Kiln-Image"          // the image line, e.g. appserver
	HeaderVersion       = "Kiln-Version"        // the version number, e.g. 3
	HeaderVersionName   = "Kiln-Version-Name"   // IMAGE-N, e.g. appserver-3
	HeaderReleaseStatus = "Kiln-Release-Status" // candidate, tested, ready, …
	HeaderFormat        = "Kiln-Artifact-Format"
	HeaderDigest        = "Kiln-Artifact-Digest" // sha256:…, checked while streaming
)

// exportExt is the file name extension of an exported artifact.
var exportExt = map[kiln.ArtifactFormat]string{kiln.FormatRootfs: ".tar", kiln.FormatQCOW2: ".qcow2", kiln.FormatRaw: ".raw"}

type exportIn struct {
	Image  string `path:"image" maxLength:"63" example:"appserver"`
	Number int    `path:"number" minimum:"1" example:"3"`
	Format string `path:"format" enum:"rootfs,qcow2,raw" doc:"rootfs (the root filesystem tarball) or a disk image the image line declares (formats = [\"qcow2\"])"`
}

// registerExport adds the download of a version's artifact: the same
// checks as `kiln version export` (signature, not revoked, not external,
// digest while streaming), over HTTP.
func (s *Server) registerExport() {
	binary := &huma.Schema{Type: "string", Format: "binary"}
	hdr := func(doc string) *huma.Param {
		return &huma.Param{Description: doc, Schema: &huma.Schema{Type: "string"}}
	}
	register(s, RoleViewer, huma.Operation{
		OperationID: "export-version-artifact", Method: http.MethodGet, Path: "/api/v1/images/{image}/versions/{number}/artifacts/{format}",
		Summary: "Download a version's root filesystem or disk image (qcow2, raw), verified", Tags: []string{"versions"},
		Description: "Streams the artifact out of the server's artifact store, as `kiln version export` writes it. " +
			"The version's signed provenance is checked first (with the server's signing key); revoked and external versions are refused. " +
			"The artifact's digest is checked while it streams: when the stored bytes do not match, the connection is cut before the last byte, " +
			"so a client that checks Content-Length (curl does) sees a failed transfer, never a short file that looks whole. " +
			"The image name, version number and release status come as headers, to carry over as tags when the disk is imported (docs/vm.md).",
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusServiceUnavailable},
		Responses: map[string]*huma.Response{"200": {
			Description: "the artifact's bytes",
			Headers: map[string]*huma.Param{
				"Content-Length":      {Description: "the artifact's size in bytes", Schema: &huma.Schema{Type: "integer"}},
				"Content-Disposition": hdr("attachment; filename=IMAGE-N.tar|.qcow2|.raw"),
				HeaderImage:           hdr("the image line"),
				HeaderVersion:         {Description: "the version number", Schema: &huma.Schema{Type: "integer"}},
				HeaderVersionName:     hdr("IMAGE-N"),
				HeaderReleaseStatus:   hdr("the version's status"),
				HeaderFormat:          hdr("rootfs, qcow2 or raw"),
				HeaderDigest:          hdr("the artifact's sha256 digest as the version records it"),
			},
			Content: map[string]*huma.MediaType{
				"application/octet-stream": {Schema: binary},
				"application/x-tar":        {Schema: binary},
			},
		}},
	}, func(ctx context.Context, in *exportIn) (*huma.StreamResponse, error) {
		if s.cfg.Artifacts == nil {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this kiln server has no artifact store to export from")
		}
		if s.cfg.SigningKey == nil {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this kiln server has no provenance signing key to check the version with before exporting it")
		}
		f, err := kiln.ParseArtifactFormat("path.format", in.Format)
		if err != nil {
			return nil, err
		}
		v, err := s.cfg.Registry.FindVersion(ctx, kiln.VersionRef{Image: in.Image, Number: in.Number})
		if err != nil {
			return nil, err
		}
		art, err := v.Exportable(f)
		if err != nil {
			return nil, err
		}
		if err := sign.CheckVersion(ctx, s.cfg.Registry, nil, []crypto.PublicKey{s.cfg.SigningKey}, v, false); err != nil {
			return nil, kiln.Errorf(kiln.ECONFLICT, "refusing to export: %s", kiln.ErrorMessage(err))
		}
		rc, err := s.cfg.Artifacts.Open(ctx, art.Digest)
		if err != nil {
			return nil, err
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			defer rc.Close()
			ct := "application/octet-stream"
			if f == kiln.FormatRootfs {
				ct = "application/x-tar"
			}
			hctx.SetHeader("Content-Type", ct)
			if art.Size > 0 {
				hctx.SetHeader("Content-Length", strconv.FormatInt(art.Size, 10))
			}
			hctx.SetHeader("Content-Disposition", fmt.Sprintf("attachment; filename=%q", v.Name+exportExt[f]))
			hctx.SetHeader(HeaderImage, v.Image)
			hctx.SetHeader(HeaderVersion, strconv.Itoa(v.Number))
			hctx.SetHeader(HeaderVersionName, v.Name)
			hctx.SetHeader(HeaderReleaseStatus, string(v.Status))
			hctx.SetHeader(HeaderFormat, string(f))
			hctx.SetHeader(HeaderDigest, art.Digest)
			hctx.SetStatus(http.StatusOK)
			if err := streamVerified(hctx.BodyWriter(), rc, art.Size); err != nil {
				s.cfg.Logger.Error("export cut short: the stored artifact does not verify", "version", v.Name, "format", f, "digest", art.Digest, "err", err)
				// The status is sent: abort the connection, so the client
				// sees a failed transfer rather than a complete-looking one.
				panic(http.ErrAbortHandler)
			}
		}}, nil
	})
}

// streamVerified copies all of rc but its last byte, then checks the
// digest (the store's reader does, at EOF and Close) and the size, and
// only then sends the last byte: a client never receives the whole
// artifact unless it verified.
func streamVerified(w io.Writer, rc io.ReadCloser, size int64) error {
	if size <= 0 {
		return errors.New("the version records no size for the artifact")
	}
	n, err := io.Copy(w, io.LimitReader(rc, size-1))
	if err != nil {
		return err
	}
	if n != size-1 {
		return fmt.Errorf("the stored artifact is %d bytes, the version records %d", n, size)
	}
	last := make([]byte, 2)
	m, err := io.ReadFull(rc, last)
	if m != 1 || !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the stored artifact is longer than the %d bytes the version records", size)
	}
	if err := rc.Close(); err != nil {
		return err
	}
	_, err = w.Write(last[:1])
	return err
}
