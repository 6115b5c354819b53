package main

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/registrytest"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// releaseImage is the bootable test image with an /etc/kiln-release
// naming appserver-1 appended, cached beside it: a real ~190 MB root
// filesystem that other tools can run.
func releaseImage(t testing.TB) string {
	t.Helper()
	base := testenv.Image(t, "a real image to push to a registry")
	out := filepath.Join(testenv.CacheDir(), "registry-"+filepath.Base(base))
	if _, err := os.Stat(out); err == nil {
		return out
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "kiln-release"), []byte("image=appserver\nversion=1\nname=appserver-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	if b, err := exec.Command("cp", base, tmp).CombinedOutput(); err != nil {
		t.Fatalf("copy image: %v: %s", err, b)
	}
	if b, err := exec.Command("tar", "--append", "-f", tmp, "--owner=0", "--group=0", "--numeric-owner", "-C", dir, "etc/kiln-release").CombinedOutput(); err != nil {
		os.Remove(tmp)
		t.Fatalf("append to image: %v: %s", err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// smallImage is a tiny artifact for a second version.
func smallImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "kiln-release"), []byte("image=appserver\nversion=2\nname=appserver-2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "small.tar")
	if b, err := exec.Command("tar", "-cf", p, "--owner=0", "--group=0", "--numeric-owner", "-C", dir, "etc").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, b)
	}
	return p
}

// machineB returns the arguments of a second machine sharing the
// builder's database and signing key, with its own empty data directory.
func machineB(t *testing.T, dirA, url string) (string, []string) {
	t.Helper()
	return t.TempDir(), []string{"--database", "sqlite:" + filepath.Join(dirA, "kiln.db"), "--signing-key", filepath.Join(dirA, "keys", "signing.key"), "--artifacts", url, "--artifacts-credentials", noCredentials(t)}
}

// noCredentials is an empty Docker-format credentials file, so the tests
// never read the machine's ~/.docker/config.json.
func noCredentials(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// blobData is where docker-registry keeps a blob's bytes.
func blobData(reg *registrytest.Registry, digest string) string {
	h := strings.TrimPrefix(digest, "sha256:")
	return filepath.Join(reg.Dir, "docker", "registry", "v2", "blobs", "sha256", h[:2], h, "data")
}

func localArtifacts(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "artifacts", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// A version pushed by the builder is verified on a machine that has only
// the registry (and the shared database): every blob is read and hashed
// and the provenance attached in the registry is checked; podman runs the
// image; tampering, a missing layer and an unreachable registry give
// errors naming the URL, the reference and what to do; gc deletes a
// revoked version's image, blobs and local artifact, and is audited.
func TestRegistryPushVerifyGC(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	url := reg.URL("kiln")
	dirA := t.TempDir()
	big, small := releaseImage(t), smallImage(t)
	db, _ := seedRollout(t, dirA, []string{big, small})
	ctx := context.Background()
	v1, err := db.FindVersion(ctx, kiln.VersionRef{Image: "appserver", Number: 1})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := db.FindVersion(ctx, kiln.VersionRef{Image: "appserver", Number: 2})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	onA := []string{"--artifacts", url, "--artifacts-credentials", noCredentials(t)}

	for _, name := range []string{"appserver-1", "appserver-2"} {
		out := mustRun(t, dirA, append(onA, "artifact", "push", name)...)
		if !strings.Contains(out, "pushed "+reg.Host+"") && !strings.Contains(out, "pushed oci://"+reg.Host+"/kiln/appserver@sha256:") {
			t.Errorf("artifact push %s: %q", name, out)
		}
	}
	// Pushing again uploads nothing.
	if out := mustRun(t, dirA, append(onA, "artifact", "push", "appserver-1")...); !strings.Contains(out, "0 B uploaded") {
		t.Errorf("second push of appserver-1: %q; want nothing uploaded", out)
	}

	dirB, onB := machineB(t, dirA, url)
	out := mustRun(t, dirB, append(onB, "version", "verify", "appserver-1")...)
	if !strings.Contains(out, "verified in the registry: oci://"+reg.Host+"/kiln/appserver@sha256:") || !strings.Contains(out, "1 layer(s)") {
		t.Errorf("verify on machine B: %q", out)
	}
	if got := localArtifacts(t, dirB); len(got) != 0 {
		t.Errorf("verify kept artifacts on machine B: %v", got)
	}

	t.Run("podman", func(t *testing.T) {
		if b := podmanCat(t, reg.Host+"/kiln/appserver:1", "/etc/kiln-release"); !strings.Contains(string(b), "name=appserver-1\n") {
			t.Errorf("podman run cat /etc/kiln-release: %q", b)
		}
	})

	t.Run("read-through", func(t *testing.T) {
		// version diff reads both artifacts: machine B pulls them into its
		// cache, verified, and reads them from there.
		dirC, onC := machineB(t, dirA, url)
		mustRun(t, dirC, append(onC, "version", "diff", "appserver-1", "appserver-2")...)
		got := localArtifacts(t, dirC)
		if len(got) != 2 {
			t.Errorf("machine C's cache after diff: %v; want both artifacts", got)
		}
	})

	t.Run("faults", func(t *testing.T) {
		// A blob altered in the registry's storage: a digest mismatch.
		data := blobData(reg, v2.Provenance.Artifact.Digest)
		orig, err := os.ReadFile(data)
		if err != nil {
			t.Fatal(err)
		}
		bad := bytes.Clone(orig)
		bad[len(bad)/2] ^= 0xff
		if err := os.WriteFile(data, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		_, errs, code := run(t, dirB, append(onB, "version", "verify", "appserver-2")...)
		if code == 0 || !strings.Contains(errs, "corrupted") || !strings.Contains(errs, "oci://"+reg.Host+"/kiln/appserver") || !strings.Contains(errs, v2.Provenance.Artifact.Digest) || !strings.Contains(errs, "push it again") {
			t.Errorf("verify of a corrupted layer: exit %d %q", code, errs)
		}
		// The layer gone: a missing layer.
		if err := os.RemoveAll(filepath.Dir(data)); err != nil {
			t.Fatal(err)
		}
		_, errs, code = run(t, dirB, append(onB, "version", "verify", "appserver-2")...)
		if code == 0 || !strings.Contains(errs, "missing from the registry") || !strings.Contains(errs, "appserver:2") || !strings.Contains(errs, "push the version again") {
			t.Errorf("verify of a missing layer: exit %d %q", code, errs)
		}
		// Put it back for gc below.
		if err := os.MkdirAll(filepath.Dir(data), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(data, orig, 0o644); err != nil {
			t.Fatal(err)
		}
		// Unreachable.
		dead := "oci://127.0.0.1:1/kiln"
		_, errs, code = run(t, dirB, append(onB, "--artifacts", dead, "version", "verify", "appserver-1")...)
		if code == 0 || !strings.Contains(errs, dead) || !strings.Contains(errs, "cannot be reached") {
			t.Errorf("verify against an unreachable registry: exit %d %q", code, errs)
		}
		// kiln serve does not start on a bad URL.
		_, errs, code = run(t, dirB, append(onB, "--artifacts", "oci://", "serve", "--listen", "127.0.0.1:0")...)
		if code == 0 || !strings.Contains(errs, "oci://HOST[:PORT]/REPOSITORY") {
			t.Errorf("serve with a bad --artifacts: exit %d %q", code, errs)
		}
		// A bad URL names the flag.
		_, errs, code = run(t, dirB, append(onB, "--artifacts", "https://x/y", "version", "verify", "appserver-1")...)
		if code == 0 || !strings.Contains(errs, "artifacts") || !strings.Contains(errs, "oci://HOST[:PORT]/REPOSITORY") {
			t.Errorf("a bad --artifacts: exit %d %q", code, errs)
		}
	})

	// gc: appserver-2 revoked, everything older than the grace (0).
	mustRun(t, dirA, "version", "status", "appserver-2", "ready", "--reason", "test")
	mustRun(t, dirA, "version", "revoke", "appserver-2", "--reason", "test")
	before := localArtifacts(t, dirA)
	// Within the grace (default 1h) the local artifacts are kept; the
	// revoked version's image and blob in the registry are not.
	out = mustRun(t, dirA, append(onA, "artifact", "gc", "--dry-run")...)
	if !strings.Contains(out, "would delete 2 item(s)") || strings.Contains(out, "local:sha256") {
		t.Errorf("gc --dry-run within the grace: %q", out)
	}
	out = mustRun(t, dirA, append(onA, "artifact", "gc", "--dry-run", "--grace", "0s")...)
	if !strings.Contains(out, "would delete 3 item(s)") || !strings.Contains(out, "appserver-2 is revoked") {
		t.Errorf("gc --dry-run: %q", out)
	}
	if got := localArtifacts(t, dirA); len(got) != len(before) {
		t.Errorf("gc --dry-run deleted local artifacts: %v → %v", before, got)
	}
	out = mustRun(t, dirA, append(onA, "artifact", "gc", "--grace", "0s")...)
	if !strings.Contains(out, "deleted 3 item(s)") {
		t.Errorf("gc: %q", out)
	}
	if got := localArtifacts(t, dirA); len(got) != 1 || "sha256:"+got[0] != v1.Provenance.Artifact.Digest {
		t.Errorf("local artifacts after gc: %v; want only appserver-1's", got)
	}
	_, errs, code := run(t, dirB, append(onB, "version", "verify", "appserver-2")...)
	if code == 0 || !strings.Contains(errs, "revoked") && !strings.Contains(errs, "no image appserver:2") {
		t.Errorf("verify of the collected appserver-2: exit %d %q", code, errs)
	}
	mustRun(t, dirB, append(onB, "version", "verify", "appserver-1")...)
	if out := mustRun(t, dirA, "audit", "-o", "json"); !strings.Contains(out, `"artifact.gc"`) {
		t.Errorf("gc not audited: %s", out)
	}
	// Nothing left to collect.
	if out := mustRun(t, dirA, append(onA, "artifact", "gc", "--grace", "0s")...); !strings.Contains(out, "deleted 0 item(s)") {
		t.Errorf("second gc: %q", out)
	}
}

// Basic auth over TLS: without credentials the error names the flag to
// give; with them (and the CA) the push works.
func TestRegistryAuthFlags(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{TLS: true, Auth: true})
	url := reg.URL("kiln")
	dir := t.TempDir()
	db, _ := seedRollout(t, dir, []string{smallImage(t)})
	db.Close()
	_, errs, code := run(t, dir, "--artifacts", url, "--artifacts-credentials", noCredentials(t), "artifact", "push", "appserver-1")
	if code == 0 || !strings.Contains(errs, "--artifacts-ca") {
		t.Errorf("push without the CA: exit %d %q; want the CA flag named", code, errs)
	}
	_, errs, code = run(t, dir, "--artifacts", url, "--artifacts-ca", reg.CAFile, "--artifacts-credentials", noCredentials(t), "artifact", "push", "appserver-1")
	if code == 0 || !strings.Contains(errs, "--artifacts-credentials") || !strings.Contains(errs, reg.Host) {
		t.Errorf("push without credentials: exit %d %q; want the credentials flag and the host named", code, errs)
	}
	wrong := reg.CredentialsFile(t, reg.User, "wrong")
	_, errs, code = run(t, dir, "--artifacts", url, "--artifacts-ca", reg.CAFile, "--artifacts-credentials", wrong, "artifact", "push", "appserver-1")
	if code == 0 || !strings.Contains(errs, "refused kiln's credentials") {
		t.Errorf("push with a wrong password: exit %d %q", code, errs)
	}
	creds := reg.CredentialsFile(t, reg.User, reg.Password)
	mustRun(t, dir, "--artifacts", url, "--artifacts-ca", reg.CAFile, "--artifacts-credentials", creds, "artifact", "push", "appserver-1")
	mustRun(t, dir, "--artifacts", url, "--artifacts-ca", reg.CAFile, "--artifacts-credentials", creds, "version", "verify", "appserver-1")
	// Plain HTTP is refused for a registry that is not on loopback
	// unless asked for: that check is artifact/oci's (url_test.go); the
	// flag reaches it.
	_, errs, code = run(t, dir, "--artifacts", url, "--artifacts-plain-http", "--artifacts-credentials", creds, "version", "verify", "appserver-1")
	if code == 0 {
		t.Errorf("plain HTTP to a TLS registry worked: %q", errs)
	}
}

// publishMain is the test binary as a builder registering a version with
// the registry store (KILN_TEST_PUBLISH=DATA-DIR, KILN_ARTIFACTS=URL,
// KILN_TEST_TAR=FILE): the artifact is put in the local store and the
// version registered through the builder's registry, which pushes it.
func publishMain() int {
	ctx := kiln.WithActor(context.Background(), "local:test")
	cfg := cli.Config{DataDir: os.Getenv("KILN_TEST_PUBLISH"), Artifacts: os.Getenv("KILN_ARTIFACTS"), ArtifactsCredentials: os.Getenv("KILN_ARTIFACTS_CREDENTIALS")}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "publish:", err)
		return 1
	}
	db, signer, err := openDB(ctx, cfg, logger)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	g := newGraph(db, signer, cfg, logger)
	if g.noPlatform != nil {
		return fail(g.noPlatform)
	}
	f, err := os.Open(os.Getenv("KILN_TEST_TAR"))
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	art, err := g.local.Put(ctx, f)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintln(os.Stderr, "publish: registering")
	v, err := g.builder.Registry.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{Artifact: art, BuiltBy: "test"}})
	if err != nil {
		return fail(err)
	}
	fmt.Println(v.Name, v.Provenance.Artifact.Ref)
	return 0
}

// A builder killed (kill -9) while it uploads a version's content leaves
// no version: the record is written only once the registry has the
// content. Run again, the version is registered, named by its registry
// reference, and its image verifies on another machine.
func TestRegistryInterruptedPush(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	url := reg.URL("kiln")
	big := releaseImage(t)
	dirA := t.TempDir()
	mustRun(t, dirA, "image", "create", "appserver")
	creds := noCredentials(t)
	publish := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "KILN_TEST_PUBLISH="+dirA, "KILN_ARTIFACTS="+url, "KILN_ARTIFACTS_CREDENTIALS="+creds, "KILN_TEST_TAR="+big)
		return cmd
	}
	uploads := filepath.Join(reg.Dir, "docker", "registry", "v2", "repositories", "kiln", "_uploads")
	cmd := publish()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once the upload has started and before it ends.
	killed := false
	deadline := time.Now().Add(2 * time.Minute)
	for !killed && time.Now().Before(deadline) {
		var n int64
		_ = filepath.WalkDir(uploads, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Name() == "data" {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
		if n > 1<<20 {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	err := cmd.Wait()
	if !killed {
		t.Fatalf("the upload never started (or ended before it could be killed): %v\n%s", err, stderr.String())
	}
	if out := mustRun(t, dirA, "version", "list", "appserver", "-o", "json"); strings.Contains(out, "appserver-1") {
		t.Fatalf("a version was registered by the killed push: %s", out)
	}
	// Run again: registered, pushed, verifiable elsewhere.
	cmd = publish()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("publish again: %v", err)
	}
	if !strings.Contains(string(out), "appserver-1 oci://"+reg.Host+"/kiln@sha256:") {
		t.Errorf("published version: %q; want it named by its registry reference", out)
	}
	dirB, onB := machineB(t, dirA, url)
	mustRun(t, dirB, append(onB, "version", "verify", "appserver-1")...)
}

// tinyImage is a tar of an /etc/kiln-release naming appserver-n.
func tinyImage(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "kiln-release"), fmt.Appendf(nil, "image=appserver\nversion=%d\nname=appserver-%d\n", n, n), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tiny.tar")
	if b, err := exec.Command("tar", "-cf", p, "--owner=0", "--group=0", "--numeric-owner", "-C", dir, "etc").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, b)
	}
	return p
}

// registryTags lists an image repository's tags as the registry has them.
func registryTags(t *testing.T, reg *registrytest.Registry, repo string) string {
	t.Helper()
	resp, err := http.Get("http://" + reg.Host + "/v2/" + repo + "/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// With deletes disabled in the registry (docker-registry's default), gc
// says what to configure, names the registry, and deletes nothing — not
// in the registry, not locally; a dry run lists what it would delete and
// says the same; nothing is audited.
func TestRegistryDeletesDisabled(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{NoDelete: true})
	url := reg.URL("kiln")
	dir := t.TempDir()
	db, _ := seedRollout(t, dir, []string{tinyImage(t, 1), tinyImage(t, 2)})
	db.Close()
	on := []string{"--artifacts", url, "--artifacts-credentials", noCredentials(t)}
	for _, name := range []string{"appserver-1", "appserver-2"} {
		mustRun(t, dir, append(on, "artifact", "push", name)...)
	}
	mustRun(t, dir, "version", "status", "appserver-2", "ready", "--reason", "test")
	mustRun(t, dir, "version", "revoke", "appserver-2", "--reason", "test")
	tags := registryTags(t, reg, "kiln/appserver")
	local := localArtifacts(t, dir)

	_, errs, code := run(t, dir, append(on, "artifact", "gc", "--grace", "0s")...)
	t.Logf("gc: exit %d: %s", code, errs)
	for _, want := range []string{"does not allow deletes", url, "nothing was deleted", "storage: delete: enabled: true", "/etc/docker/registry/config.yml", "405"} {
		if code == 0 || !strings.Contains(errs, want) {
			t.Errorf("gc against a registry without deletes: exit %d %q; want %q in it", code, errs, want)
		}
	}
	if got := registryTags(t, reg, "kiln/appserver"); got != tags {
		t.Errorf("the registry's tags after the refused gc: %s; before %s", got, tags)
	}
	if got := localArtifacts(t, dir); !slices.Equal(got, local) {
		t.Errorf("local artifacts after the refused gc: %v; before %v", got, local)
	}
	out := mustRun(t, dir, append(on, "artifact", "gc", "--grace", "0s", "--dry-run")...)
	if !strings.Contains(out, "would delete") || !strings.Contains(out, "appserver-2 is revoked") || !strings.Contains(out, "a real gc would stop before deleting anything") || !strings.Contains(out, "storage: delete: enabled: true") {
		t.Errorf("gc --dry-run against a registry without deletes: %q", out)
	}
	if out := mustRun(t, dir, "audit", "-o", "json"); strings.Contains(out, `"artifact.gc"`) {
		t.Errorf("a gc that deleted nothing was audited: %s", out)
	}
	// Nothing was deleted half: both versions still verify.
	dirB, onB := machineB(t, dir, url)
	mustRun(t, dirB, append(onB, "version", "verify", "appserver-1")...)
}

// An account with pull rights only (the registry answers 403 to every
// write): registering a version fails before anything is recorded, with
// an error naming the registry, the request's URL, the content and what
// to do; `kiln artifact push` says the same; `version verify` (reads)
// works through the same account.
func TestRegistryForbiddenPush(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{Auth: true})
	ro := registrytest.ReadOnlyProxy(t, reg)
	url := ro.URL("kiln")
	creds := registrytest.CredentialsFile(t, ro.Host, reg.User, reg.Password)
	wantAll := func(what, errs string, code int, wants ...string) {
		t.Helper()
		t.Logf("%s: exit %d: %s", what, code, errs)
		for _, want := range wants {
			if code == 0 || !strings.Contains(errs, want) {
				t.Errorf("%s with a pull-only account: exit %d %q; want %q in it", what, code, errs, want)
			}
		}
	}

	// A build registering its version (the builder's registry pushes the
	// content before it records the version).
	dirA := t.TempDir()
	mustRun(t, dirA, "image", "create", "appserver")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KILN_TEST_PUBLISH="+dirA, "KILN_ARTIFACTS="+url, "KILN_ARTIFACTS_CREDENTIALS="+creds, "KILN_TEST_TAR="+tinyImage(t, 1))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	wantAll("registering a version", stderr.String(), map[bool]int{true: 1}[err != nil],
		"before registering it", "upload artifact sha256:", url, "POST http://"+ro.Host+"/v2/kiln/blobs/uploads/", "403 Forbidden", "needs pull and push on kiln", "--artifacts-credentials "+creds)
	if out := mustRun(t, dirA, "version", "list", "appserver", "-o", "json"); strings.Contains(out, "appserver-1") {
		t.Errorf("a version was registered though its content could not be pushed: %s", out)
	}

	// kiln artifact push of a registered version.
	dirC := t.TempDir()
	db, _ := seedRollout(t, dirC, []string{tinyImage(t, 1)})
	db.Close()
	_, errs, code := run(t, dirC, "--artifacts", url, "--artifacts-credentials", creds, "artifact", "push", "appserver-1")
	wantAll("kiln artifact push", errs, code, url, "403 Forbidden", "needs pull and push", "grant them in the registry")
	if ro.Denied.Load() == 0 {
		t.Error("the proxy refused nothing")
	}
	// Reads through the same account work: pushed by an account with
	// push rights, verified by the pull-only one.
	full := reg.CredentialsFile(t, reg.User, reg.Password)
	mustRun(t, dirC, "--artifacts", reg.URL("kiln"), "--artifacts-credentials", full, "artifact", "push", "appserver-1")
	dirD, _ := machineB(t, dirC, url)
	mustRun(t, dirD, "--database", "sqlite:"+filepath.Join(dirC, "kiln.db"), "--signing-key", filepath.Join(dirC, "keys", "signing.key"), "--artifacts", url, "--artifacts-credentials", creds, "version", "verify", "appserver-1")
}

// gateProxy is a reverse proxy on loopback in front of a registry whose
// hook sees (and may hold) every request before it is passed on: how the
// race tests interleave a gc and a build at chosen requests.
type gateProxy struct {
	Host string
	mu   sync.Mutex
	hook func(r *http.Request)
	log  []string // "METHOD PATH" of every request passed on, in order
}

func newGateProxy(t *testing.T, reg *registrytest.Registry) *gateProxy {
	t.Helper()
	g := &gateProxy{}
	rp := httputil.NewSingleHostReverseProxy(&neturl.URL{Scheme: "http", Host: reg.Host})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		hook := g.hook
		g.mu.Unlock()
		if hook != nil {
			hook(r)
		}
		g.mu.Lock()
		g.log = append(g.log, r.Method+" "+r.URL.Path)
		g.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g.Host = srv.Listener.Addr().String()
	return g
}

func (g *gateProxy) setHook(h func(r *http.Request)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hook = h
}

// since returns the requests passed on after the first one that matches.
func (g *gateProxy) since(method, suffix string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, l := range g.log {
		if strings.HasPrefix(l, method+" ") && strings.HasSuffix(l, suffix) {
			return slices.Clone(g.log[i+1:])
		}
	}
	return nil
}

// once returns a function that closes ch the first time it is called.
func once(ch chan struct{}) func() {
	var o sync.Once
	return func() { o.Do(func() { close(ch) }) }
}

// recordWatch is a builder's registry that calls after once a version is
// recorded, before the builder goes on (to push its image): what a
// builder killed right after the record leaves behind.
type recordWatch struct {
	kiln.Registry
	after func(v *kiln.Version)
}

func (r *recordWatch) CreateVersion(ctx context.Context, nv *kiln.NewVersion) (*kiln.Version, error) {
	v, err := r.Registry.CreateVersion(ctx, nv)
	if err == nil {
		r.after(v)
	}
	return v, err
}

// blobInRegistry asks the registry itself (not through the proxy) whether
// the store's repository holds blob d.
func blobInRegistry(t *testing.T, reg *registrytest.Registry, d string) bool {
	t.Helper()
	resp, err := http.Head("http://" + reg.Host + "/v2/kiln/blobs/" + d)
	if err != nil {
		t.Error(err)
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// A build on one machine and `kiln artifact gc` on another, sharing the
// database and the registry, both touching a blob a revoked version held
// (the build's content is identical, so its upload finds it there):
//
//   - gc first: gc holds the gc mark and is about to delete the blob when
//     the build leases it and finds it in the registry (no upload). The
//     lease says a gc is running, so the build waits for it to end and
//     checks again: it uploads the blob gc deleted before it records the
//     version. At the record (where a builder killed before its image's
//     push would stop) the blob is in the registry.
//   - build first: the build has leased the blob and is checking it when
//     gc runs from start to end: gc keeps the leased blob and says why.
//
// Both interleavings are forced at chosen registry requests (a proxy that
// holds them), not by sleeping. The two machines share a SQLite file, then
// a PostgreSQL database.
func TestRegistryGCRacesBuild(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testGCRacesBuild(t, "") })
	t.Run("postgres", func(t *testing.T) { testGCRacesBuild(t, pgSchema(t)) })
}

// seedVersions opens database (empty: SQLite in dir) for machine dir,
// with a new signing key sealing versions, and registers image appserver
// with one version per tar, the first ready, the others tested.
func seedVersions(t *testing.T, database, dir string, tars []string) (*store.DB, *sign.Signer) {
	t.Helper()
	ctx := kiln.WithActor(context.Background(), "local:test")
	signer, _, err := sign.LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, database, dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SealVersionsWith(signer.Seal)
	arts, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Fatal(err)
	}
	for i, p := range tars {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		a, err := arts.Put(ctx, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{Artifact: a, BuiltBy: "test"}})
		if err != nil {
			t.Fatal(err)
		}
		sts := []kiln.Status{kiln.StatusTested, kiln.StatusReady}
		if i > 0 {
			sts = sts[:1]
		}
		for _, st := range sts {
			if _, err := db.SetStatus(ctx, v.Ref(), st, "test"); err != nil {
				t.Fatal(err)
			}
		}
	}
	return db, signer
}

func testGCRacesBuild(t *testing.T, database string) {
	reg := registrytest.Start(t, registrytest.Options{})
	gate := newGateProxy(t, reg)
	url := "oci://" + gate.Host + "/kiln"
	ctx := kiln.WithActor(context.Background(), "local:test")
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	tar1, tar2 := tinyImage(t, 1), tinyImage(t, 2)

	// Machine A: appserver-1 and -2 registered and pushed; it runs gc.
	dirA := t.TempDir()
	dbA, signer := seedVersions(t, database, dirA, []string{tar1, tar2})
	if database == "" {
		database = "sqlite:" + filepath.Join(dirA, "kiln.db")
	}
	creds := noCredentials(t)
	localA, _, imagesA, err := openArtifacts(cli.Config{DataDir: dirA, Artifacts: url, ArtifactsCredentials: creds}, dbA, logger)
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 2; n++ {
		v, err := dbA.FindVersion(ctx, kiln.VersionRef{Image: "appserver", Number: n})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := imagesA.PushVersion(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	gc := &collector{dataDir: dirA, local: localA, images: imagesA, reg: dbA, leases: dbA, logger: logger, audit: dbA, now: time.Now}
	revoke := func(n int) *kiln.Version {
		t.Helper()
		ref := kiln.VersionRef{Image: "appserver", Number: n}
		v, err := dbA.FindVersion(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if v.Status != kiln.StatusReady {
			if _, err := dbA.SetStatus(ctx, ref, kiln.StatusReady, "test"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := dbA.Revoke(ctx, ref, "test"); err != nil {
			t.Fatal(err)
		}
		if v, err = dbA.FindVersion(ctx, ref); err != nil {
			t.Fatal(err)
		}
		return v
	}

	// Machine B: a builder with its own data directory, the same database
	// (another handle) and registry; its local store holds both contents.
	dirB := t.TempDir()
	dbB, err := store.Open(ctx, database, dirB, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dbB.Close() })
	dbB.SealVersionsWith(signer.Seal)
	localB, _, imagesB, err := openArtifacts(cli.Config{DataDir: dirB, Artifacts: url, ArtifactsCredentials: creds}, dbB, logger)
	if err != nil {
		t.Fatal(err)
	}
	put := func(p string) *kiln.Artifact {
		t.Helper()
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		a, err := localB.Put(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	type built struct {
		v   *kiln.Version
		err error
	}
	build := func(reg kiln.Registry, a *kiln.Artifact) <-chan built {
		out := make(chan built, 1)
		pub := &publishing{Registry: reg, images: imagesB, leases: dbB}
		go func() {
			v, err := pub.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{Artifact: a, BuiltBy: "test"}})
			out <- built{v, err}
		}()
		return out
	}
	type collected struct {
		rep *cli.GCReport
		err error
	}
	collect := func() <-chan collected {
		out := make(chan collected, 1)
		go func() {
			rep, err := gc.CollectArtifacts(ctx, cli.GCOptions{Grace: 0})
			out <- collected{rep, err}
		}()
		return out
	}
	deleted := func(rep *cli.GCReport, d string) bool {
		for _, it := range rep.Items {
			if it.Kind == "artifact" && strings.HasSuffix(it.Ref, "/kiln@"+d) {
				return true
			}
		}
		return false
	}

	t.Run("gc first", func(t *testing.T) {
		v1 := revoke(1)
		d := v1.Provenance.Artifact.Digest
		gcDeleting, gcGo, buildChecked := make(chan struct{}), make(chan struct{}), make(chan struct{})
		deleting, checked := once(gcDeleting), once(buildChecked)
		gate.setHook(func(r *http.Request) {
			switch {
			case r.Method == http.MethodDelete && strings.HasSuffix(r.URL.Path, "/blobs/"+d):
				deleting()
				<-gcGo
			case r.Method == http.MethodHead && r.URL.Path == "/v2/kiln/blobs/"+d:
				select {
				case <-gcDeleting: // the build's check, not gc's own
					checked()
				default:
				}
			}
		})
		t.Cleanup(func() { gate.setHook(nil) })
		gcDone := collect()
		<-gcDeleting // gc holds the mark and deletes the blob's first copy

		var gcResult collected
		gcEnded := make(chan struct{})
		var atRecord bool
		watch := &recordWatch{Registry: dbB, after: func(v *kiln.Version) {
			// A builder killed here: wait for the gc, then look.
			<-gcEnded
			atRecord = blobInRegistry(t, reg, d)
		}}
		b := build(watch, put(tar1))
		<-buildChecked // the build found the blob there: no upload
		close(gcGo)
		gcResult = <-gcDone
		close(gcEnded)
		res := <-b
		if gcResult.err != nil {
			t.Fatalf("gc: %v", gcResult.err)
		}
		if res.err != nil {
			t.Fatalf("build: %v", res.err)
		}
		if !deleted(gcResult.rep, d) {
			t.Fatalf("gc did not delete %s; the race was not run: %+v", d, gcResult.rep)
		}
		if !atRecord {
			t.Errorf("when %s was recorded, its content %s was not in the registry: a builder killed then leaves a version pointing at nothing", res.v.Name, d)
		}
		if after := gate.since(http.MethodDelete, "/v2/kiln/blobs/"+d); !slices.Contains(after, "POST /v2/kiln/blobs/uploads/") {
			t.Errorf("the build did not upload its content again after gc deleted it; requests since: %v", after)
		}
		c, err := imagesB.CheckVersion(ctx, res.v, []crypto.PublicKey{signer.Public()})
		if err != nil {
			t.Fatalf("verify %s from the registry: %v", res.v.Name, err)
		}
		if len(c.Layers) != 1 || c.Layers[0] != d {
			t.Errorf("%s's image layers = %v; want [%s]", res.v.Name, c.Layers, d)
		}
		if l, err := dbA.LeasedBlobs(ctx); err != nil || len(l) != 0 {
			t.Errorf("leases once the build is done = %v, %v; want none", l, err)
		}
		if m, err := dbA.BlobGCMark(ctx); err != nil || m.Running {
			t.Errorf("gc mark once gc is done = %+v, %v; want none running", m, err)
		}
	})

	t.Run("build first", func(t *testing.T) {
		v2 := revoke(2)
		d := v2.Provenance.Artifact.Digest
		buildChecking, buildGo := make(chan struct{}), make(chan struct{})
		checking := once(buildChecking)
		gate.setHook(func(r *http.Request) {
			if r.Method == http.MethodHead && r.URL.Path == "/v2/kiln/blobs/"+d {
				select {
				case <-buildChecking: // gc's, if any: it must not ask
				default:
					checking()
					<-buildGo
				}
			}
		})
		t.Cleanup(func() { gate.setHook(nil) })
		b := build(dbB, put(tar2))
		<-buildChecking // leased, and checking the registry
		rep := <-collect()
		close(buildGo)
		res := <-b
		if rep.err != nil {
			t.Fatalf("gc: %v", rep.err)
		}
		if res.err != nil {
			t.Fatalf("build: %v", res.err)
		}
		if deleted(rep.rep, d) {
			t.Errorf("gc deleted %s, which a build had leased", d)
		}
		if !slices.ContainsFunc(rep.rep.Notes, func(n string) bool { return strings.Contains(n, d) && strings.Contains(n, "a lease on it") }) {
			t.Errorf("gc's notes do not say why %s was kept: %q", d, rep.rep.Notes)
		}
		if !blobInRegistry(t, reg, d) {
			t.Errorf("%s is not in the registry", d)
		}
		if _, err := imagesB.CheckVersion(ctx, res.v, []crypto.PublicKey{signer.Public()}); err != nil {
			t.Errorf("verify %s from the registry: %v", res.v.Name, err)
		}
	})
}

// podmanCat runs `cat file` in the image ref (a loopback registry's,
// plain HTTP) with podman, as a user of the image would, and returns what
// it printed.
func podmanCat(t *testing.T, ref, file string) []byte {
	t.Helper()
	podman := ci.Tool(t, "podman", "podman")
	root, err := os.MkdirTemp("", "kpod") // podman wants a short runroot
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	// The sandboxes kiln's tests run in have hybrid cgroups (crun
	// refuses them: runc) and hard limits below podman's defaults
	// (no default ulimits).
	runc := ci.Tool(t, "runc", "runc")
	conf := filepath.Join(root, "containers.conf")
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(podman, "--root", filepath.Join(root, "root"), "--runroot", filepath.Join(root, "run"), "--storage-driver", "vfs", "--runtime", runc,
		"run", "--rm", "--network", "none", "--tls-verify=false", ref, "cat", file)
	cmd.Env = append(os.Environ(), "HOME="+root, "CONTAINERS_CONF="+conf, "XDG_CONFIG_HOME="+filepath.Join(root, "config"), "XDG_RUNTIME_DIR="+filepath.Join(root, "xdg"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("podman run %s cat %s: %v\n%s", ref, file, err, stderr.String())
	}
	return b
}
