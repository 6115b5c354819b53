package benchdrivers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/artifact/oci"
	"github.com/kiln-project/kiln/bench"
)

// registry is a docker-registry started for a measure, with kiln's
// registry artifact store on its repository "kiln".
type registry struct {
	host, storage string
	st            *oci.Store
	cmd           *exec.Cmd
	exited        chan error
}

// openRegistry starts docker-registry on a free loopback port with its
// storage (deletes enabled) under dir and waits until it answers.
func openRegistry(ctx context.Context, dir string, logger *slog.Logger) (bench.Registry, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, errors.New("bench: the registry figures need docker-registry (Debian package docker-registry)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	host := ln.Addr().String()
	_ = ln.Close()
	r := &registry{host: host, storage: filepath.Join(dir, "storage"), exited: make(chan error, 1)}
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: %s\n", r.storage, host)
	cfgFile, creds := filepath.Join(dir, "config.yml"), filepath.Join(dir, "auth.json")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(creds, []byte(`{"auths":{}}`), 0o600); err != nil { // never the machine's ~/.docker
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, err
	}
	r.cmd = exec.Command(bin, "serve", cfgFile)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	r.cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	if err := r.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start docker-registry: %w", err)
	}
	go func() { r.exited <- r.cmd.Wait(); logf.Close() }()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/v2/", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-r.exited:
			return nil, fmt.Errorf("docker-registry exited before serving (%w); see %s", err, filepath.Join(dir, "registry.log"))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.Close()
			return nil, fmt.Errorf("docker-registry did not answer on %s within 15s; see %s", host, filepath.Join(dir, "registry.log"))
		}
	}
	r.st, err = oci.Open("oci://"+host+"/kiln", oci.Options{CredentialsFile: creds, SpoolDir: dir, UserAgent: "kiln-bench"})
	if err != nil {
		r.Close()
		return nil, err
	}
	logger.Debug("registry started", "host", host)
	return r, nil
}

func (r *registry) Host() string    { return r.host }
func (r *registry) Storage() string { return r.storage }

// Close stops the registry.
func (r *registry) Close() {
	_ = r.cmd.Process.Kill()
	werr := <-r.exited // "killed"
	r.exited <- werr   // a second Close returns at once
}

// Push does what a builder with --artifacts oci://… does once a version
// is registered: its content into the store's repository (what is there
// already is not uploaded), then the image IMAGE:N, its layers mounted
// from there or from the base's repository.
func (r *registry) Push(ctx context.Context, v *kiln.Version, src kiln.ArtifactStore) (int64, error) {
	a := v.Provenance.Artifact
	if a == nil {
		return 0, fmt.Errorf("bench: %s has no artifact", v.Name)
	}
	var uploaded int64
	for _, d := range v.Provenance.ContentDigests() {
		ok, err := r.st.HasLayer(ctx, "", d)
		if err != nil {
			return 0, err
		}
		pa, err := r.st.PutFrom(ctx, src, d)
		if err != nil {
			return 0, err
		}
		if !ok {
			uploaded += pa.Size
		}
	}
	layers := []oci.Layer{{Digest: a.Digest, Size: a.Size}}
	if a.Layered() {
		layers = layers[:0]
		for _, l := range a.Layers {
			layers = append(layers, oci.Layer{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, DiffID: l.DiffID})
		}
	}
	var mount []string
	if b := v.Provenance.Base; b != nil {
		mount = append(mount, b.Image)
	}
	p, err := r.st.PushVersion(ctx, &oci.Version{Image: v.Image, Number: v.Number, Created: v.CreatedAt, Layers: layers, MountFrom: mount,
		Release: map[string]string{"name": v.Name}}, src)
	if err != nil {
		return 0, err
	}
	return uploaded + p.Uploaded, nil
}

// Pull copies v's image layers into dst, each verified as it streams.
func (r *registry) Pull(ctx context.Context, v *kiln.Version, dst kiln.ArtifactStore) error {
	_, err := r.st.Fetch(ctx, v.Image, strconv.Itoa(v.Number), dst)
	return err
}

// ReadThrough is a second machine's artifact store: a local store in dir
// that pulls what it lacks from the registry, verified.
func (r *registry) ReadThrough(dir string) (kiln.ArtifactStore, error) {
	local, err := artifact.Open(dir)
	if err != nil {
		return nil, err
	}
	return &artifact.ReadThrough{Local: local, Remote: r.st}, nil
}
