package layer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/kiln-project/kiln"
)

// Compression is how a layer blob is compressed.
type Compression string

// The compressions Put writes. Both are reproducible: one fixed level
// and fixed options each (and the compressor's version, pinned in
// go.mod), no names or times in the stream, so the same tree always gives
// the same blob.
const (
	// Gzip is the default: every OCI tool reads it.
	Gzip Compression = "gzip"
	// Zstd is smaller and faster to unpack; podman, containerd and
	// skopeo read it, some older tools do not.
	Zstd Compression = "zstd"
)

// Compressions are the values ParseCompression accepts.
var Compressions = []Compression{Gzip, Zstd}

// ParseCompression checks a compression given in field ("" is Gzip).
func ParseCompression(field, s string) (Compression, error) {
	switch Compression(s) {
	case "", Gzip:
		return Gzip, nil
	case Zstd:
		return Zstd, nil
	}
	return "", kiln.FieldErrorf(kiln.EINVALID, field, "layer compression %q is not gzip or zstd", s)
}

// MediaType is the OCI layer media type of a blob compressed with c.
func (c Compression) MediaType() string {
	if c == Zstd {
		return kiln.LayerMediaTypeZstd
	}
	return kiln.LayerMediaTypeGzip
}

const (
	// gzipLevel is the one level kiln writes gzip layers with.
	gzipLevel = gzip.BestSpeed
	// zstdConcurrency is fixed, not the machine's CPU count, so that
	// every machine writes the same bytes.
	zstdConcurrency = 2
)

// compressor returns a writer compressing into w with c.
func compressor(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case "", Gzip:
		return gzip.NewWriterLevel(w, gzipLevel)
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(zstdConcurrency),
			zstd.WithEncoderCRC(true), zstd.WithZeroFrames(false), zstd.WithSingleSegment(false))
	}
	return nil, kiln.FieldErrorf(kiln.EINVALID, "compression", "layer compression %q is not gzip or zstd", c)
}

// Put writes the tree under dir (WriteTar with opts) as a layer blob,
// compressed as opts.Compression says (gzip by default), into store and
// returns the layer. The tar is reproducible (entries in name order,
// numeric owners, seconds-precision mtimes, no atime or ctime, no user or
// group names) and the compressed stream has no name and no time, so the
// same tree and compression give the same Digest and DiffID (the DiffID
// does not depend on the compression).
func Put(ctx context.Context, store kiln.ArtifactStore, dir string, opts WriteOptions) (kiln.Layer, error) {
	if _, err := compressor(io.Discard, opts.Compression); err != nil {
		return kiln.Layer{}, err
	}
	// Three stages on their own goroutines, so that on a machine with
	// more than one core reading the tree, tarring it and hashing the tar
	// overlap the compression (the longest of them), and that with the
	// store's hashing and writing: tar (and its diff ID) → compress → store.
	// compress/flate's output depends on how its input is cut into
	// writes, so the compress stage gets the tar writer's writes one by one,
	// as they were made: the blob is the one a single goroutine writes.
	writes := make(chan []byte, 256)
	stop := make(chan struct{}) // closed when the compress stage gives up
	var tarErr error
	diff := sha256.New()
	tarDone := make(chan struct{})
	go func() {
		defer close(tarDone)
		defer close(writes)
		tarErr = WriteTar(ctx, dir, &chanWriter{diff: diff, out: writes, stop: stop}, opts)
	}()
	pr, pw := io.Pipe()
	zipDone := make(chan struct{})
	go func() {
		defer close(zipDone)
		zw, err := compressor(pw, opts.Compression)
		for b := range writes {
			if err == nil {
				_, err = zw.Write(b)
				if err != nil {
					close(stop)
				}
			}
		}
		<-tarDone
		if err == nil {
			if err = tarErr; err == nil {
				err = zw.Close()
			}
		}
		pw.CloseWithError(err)
	}()
	a, err := store.Put(ctx, pr)
	pr.CloseWithError(errors.New("artifact store stopped reading"))
	<-zipDone
	if err != nil {
		return kiln.Layer{}, err
	}
	return kiln.Layer{Digest: a.Digest, DiffID: sum(diff), Size: a.Size, MediaType: opts.Compression.MediaType()}, nil
}

// chanWriter hashes each write and hands a copy of it to the compress stage.
type chanWriter struct {
	diff hash.Hash
	out  chan<- []byte
	stop <-chan struct{}
}

func (w *chanWriter) Write(p []byte) (int, error) {
	w.diff.Write(p)
	b := append([]byte(nil), p...)
	select {
	case w.out <- b:
		return len(p), nil
	case <-w.stop:
		return 0, errors.New("layer compression stopped")
	}
}

// Tar describes a single-tar artifact (an older version's, or an origin
// artifact) as an uncompressed layer, so a layered artifact can stack on it.
func Tar(a *kiln.Artifact) kiln.Layer {
	return kiln.Layer{Digest: a.Digest, DiffID: a.Digest, Size: a.Size, MediaType: kiln.LayerMediaTypeTar}
}

// Open returns the uncompressed tar of layer l. The store verifies the
// blob's digest; the reader verifies the DiffID: reading to the end, or
// Close, returns an error when either does not match (Close reads what the
// caller left, so a tar reader stopping at the end-of-archive blocks still
// verifies every byte).
func Open(ctx context.Context, store kiln.ArtifactStore, l kiln.Layer) (io.ReadCloser, error) {
	if err := l.Validate("layer"); err != nil {
		return nil, err
	}
	blob, err := store.Open(ctx, l.Digest)
	if err != nil {
		return nil, fmt.Errorf("open layer %s: %w", l.Digest, err)
	}
	return Uncompress(blob, l)
}

// Uncompress returns the uncompressed tar of layer l read from blob,
// which must check the blob's own digest (a kiln.ArtifactStore's reader
// does; so does a registry's, oci.Store.OpenLayer): reading to the end,
// or Close, returns an error when the tar does not hash to l.DiffID or
// the blob to its digest. It takes blob over: Close closes it.
func Uncompress(blob io.ReadCloser, l kiln.Layer) (io.ReadCloser, error) {
	if err := l.Validate("layer"); err != nil {
		blob.Close()
		return nil, err
	}
	v := &verified{blob: blob, h: sha256.New(), layer: l}
	switch l.MediaType {
	case kiln.LayerMediaTypeGzip:
		zr, err := gzip.NewReader(blob)
		if err != nil {
			blob.Close()
			return nil, kiln.Errorf(kiln.EINVALID, "layer %s is not gzip data: %v; the artifact store holds something else under its digest", l.Digest, err)
		}
		zr.Multistream(false)
		v.r, v.closeDec = zr, func() { zr.Close() }
	case kiln.LayerMediaTypeZstd:
		zr, err := zstd.NewReader(blob, zstd.WithDecoderConcurrency(1))
		if err != nil {
			blob.Close()
			return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		v.r, v.closeDec = zr, zr.Close
	default:
		v.r = blob
	}
	return v, nil
}

// verified is a layer's uncompressed stream, hashed as it is read.
type verified struct {
	blob     io.ReadCloser
	r        io.Reader
	closeDec func()
	h        hash.Hash
	layer    kiln.Layer
	err      error
	closed   bool
}

func (v *verified) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	if errors.Is(err, io.EOF) {
		if verr := v.finish(); verr != nil {
			v.err = verr
			return n, verr
		}
		v.err = io.EOF
	} else if err != nil {
		v.err = fmt.Errorf("read layer %s: %w", v.layer.Digest, err)
		return n, v.err
	}
	return n, err
}

// finish checks the DiffID and lets the store check the blob's digest
// (reading it to its end).
func (v *verified) finish() error {
	if v.closeDec != nil {
		// The decompressor may stop before the blob's last bytes.
		if _, err := io.Copy(io.Discard, v.blob); err != nil {
			return fmt.Errorf("layer %s: %w", v.layer.Digest, err)
		}
	}
	if err := v.blob.Close(); err != nil {
		return fmt.Errorf("layer %s: %w", v.layer.Digest, err)
	}
	v.closed = true
	if got := sum(v.h); got != v.layer.DiffID {
		return kiln.Errorf(kiln.EINTERNAL, "layer %s is corrupt: its tar hashes to %s, not its diff ID %s; rebuild the version or restore the artifact store", v.layer.Digest, got, v.layer.DiffID)
	}
	return nil
}

func (v *verified) Close() error {
	var err error
	if v.err == nil {
		_, err = io.Copy(io.Discard, struct{ io.Reader }{v})
	} else if !errors.Is(v.err, io.EOF) {
		err = v.err
	}
	if v.closeDec != nil {
		v.closeDec()
		v.closeDec = nil
	}
	if !v.closed {
		v.blob.Close()
		v.closed = true
	}
	return err
}

// PutList stores the layer list of layers (bottom first) and returns the
// layered artifact it makes: its Digest is the list's, its Size the sum of
// the layers' sizes.
func PutList(ctx context.Context, store kiln.ArtifactStore, layers []kiln.Layer) (*kiln.Artifact, error) {
	b, err := kiln.EncodeLayerList(layers)
	if err != nil {
		return nil, err
	}
	a, err := store.Put(ctx, bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("store layer list: %w", err)
	}
	out := *a
	out.Layers = slices.Clone(layers)
	out.Size = 0
	for _, l := range layers {
		out.Size += l.Size
	}
	return &out, nil
}

// maxList bounds a layer list document (kiln.MaxLayers layers take ~6 KiB).
const maxList = 1 << 20

// Layers returns the layers of a layered artifact as its stored layer
// list says (verified against a.Digest), and refuses an artifact whose
// recorded Layers differ from that list: the list is what the signed
// digest covers. A single-tar artifact is returned as one uncompressed
// layer.
func Layers(ctx context.Context, store kiln.ArtifactStore, a *kiln.Artifact) ([]kiln.Layer, error) {
	if a == nil || a.External() {
		return nil, kiln.Errorf(kiln.EINVALID, "no artifact kiln holds")
	}
	if !a.Layered() {
		return []kiln.Layer{Tar(a)}, nil
	}
	rc, err := store.Open(ctx, a.Digest)
	if err != nil {
		return nil, fmt.Errorf("open layer list %s: %w", a.Digest, err)
	}
	b, err := io.ReadAll(io.LimitReader(rc, maxList+1))
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("read layer list %s: %w", a.Digest, err)
	}
	if len(b) > maxList {
		return nil, kiln.Errorf(kiln.EINVALID, "artifact %s is larger than a layer list can be (%d bytes)", a.Digest, maxList)
	}
	got, err := kiln.DecodeLayerList(b)
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", a.Digest, err)
	}
	if !slices.Equal(got, a.Layers) {
		return nil, kiln.Errorf(kiln.ECONFLICT, "artifact %s: the layers recorded with the version differ from its stored (signed) layer list; the registry was changed — restore it from a backup", a.Digest)
	}
	return got, nil
}

func sum(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }
