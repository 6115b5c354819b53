// Package aptrepotest is test support for the patching tests: a tiny
// Debian package built with dpkg-deb, a local Debian repository indexed
// with apt-ftparchive (Debian's apt-utils) and served over HTTP on
// 127.0.0.1, able to publish new versions while it runs, and a loopback
// OSV feed. Tests only; it never touches anything but its temporary
// directories and loopback.
package aptrepotest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-project/kiln/internal/ci"
)

// Suite and Component name the repository's one distribution.
const (
	Suite     = "kiln"
	Component = "main"
)

// Repo is a local Debian repository served on loopback: a flat pool and
// dists/Suite/Component/binary-{all,amd64} indexes, with a Release file
// that apt accepts with [trusted=yes] (it is not signed).
type Repo struct {
	// Dir is the repository's root directory; URL serves it.
	Dir string
	URL string

	mu  sync.Mutex
	srv *httptest.Server
}

// New makes an empty repository and serves it until the test ends. It
// skips (fails under CI=true) without dpkg-deb and apt-ftparchive.
func New(t testing.TB) *Repo {
	t.Helper()
	for _, tool := range []string{"dpkg-deb", "apt-ftparchive"} {
		if _, err := exec.LookPath(tool); err != nil {
			ci.SkipOrFail(t, tool+" is not installed (scripts/deps.sh installs dpkg and apt-utils)")
		}
	}
	r := &Repo{Dir: t.TempDir()}
	fs := http.FileServer(http.Dir(r.Dir))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// A publication replaces the indexes as a whole: serve none half-written.
		r.mu.Lock()
		defer r.mu.Unlock()
		fs.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.URL = r.srv.URL
	if err := r.index(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// SourcesLine is the one-line apt source for the repository.
func (r *Repo) SourcesLine() string {
	return fmt.Sprintf("deb [trusted=yes] %s %s %s", r.URL, Suite, Component)
}

// Publish builds pkg at version (Architecture all) and publishes it: the
// .deb goes into the pool beside the earlier ones and the indexes are
// generated again, so apt sees the new version as the candidate.
func (r *Repo) Publish(t testing.TB, pkg, version string) string {
	t.Helper()
	ctx := context.Background()
	pool := filepath.Join(r.Dir, "pool", Component)
	if err := os.MkdirAll(pool, 0o755); err != nil {
		t.Fatal(err)
	}
	deb, err := BuildDeb(ctx, t.TempDir(), pkg, version)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	dst := filepath.Join(pool, filepath.Base(deb))
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.index(ctx); err != nil {
		t.Fatal(err)
	}
	return dst
}

// index writes Packages, Packages.gz and Release for the pool's debs.
func (r *Repo) index(ctx context.Context) error {
	for _, arch := range []string{"all", "amd64"} {
		dir := filepath.Join(r.Dir, "dists", Suite, Component, "binary-"+arch)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(r.Dir, "pool", Component), 0o755); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "apt-ftparchive", "--arch", arch, "packages", "pool/"+Component)
		cmd.Dir = r.Dir
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-ftparchive packages: %w: %s", err, stderr.String())
		}
		if err := os.WriteFile(filepath.Join(dir, "Packages"), out.Bytes(), 0o644); err != nil {
			return err
		}
		gz := exec.CommandContext(ctx, "gzip", "-9nkf", filepath.Join(dir, "Packages"))
		if b, err := gz.CombinedOutput(); err != nil {
			return fmt.Errorf("gzip Packages: %w: %s", err, b)
		}
	}
	dists := filepath.Join(r.Dir, "dists", Suite)
	_ = os.Remove(filepath.Join(dists, "Release"))
	cmd := exec.CommandContext(ctx, "apt-ftparchive",
		"-o", "APT::FTPArchive::Release::Suite="+Suite, "-o", "APT::FTPArchive::Release::Codename="+Suite,
		"-o", "APT::FTPArchive::Release::Components="+Component, "-o", "APT::FTPArchive::Release::Architectures=all amd64",
		"-o", "APT::FTPArchive::Release::Origin=kiln-test", "-o", "APT::FTPArchive::Release::Label=kiln-test",
		"release", ".")
	cmd.Dir = dists
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apt-ftparchive release: %w: %s", err, stderr.String())
	}
	return os.WriteFile(filepath.Join(dists, "Release"), out.Bytes(), 0o644)
}

// BuildDeb builds a package named pkg at version in dir with dpkg-deb:
// Architecture all, no dependencies, one file /usr/share/PKG/version
// holding the version (so an instance can show which one it runs), and
// returns the .deb's path.
func BuildDeb(ctx context.Context, dir, pkg, version string) (string, error) {
	root := filepath.Join(dir, pkg+"_"+version)
	for _, d := range []string{"DEBIAN", filepath.Join("usr", "share", pkg)} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	control := strings.Join([]string{
		"Package: " + pkg,
		"Version: " + version,
		"Architecture: all",
		"Maintainer: kiln tests <kiln@localhost>",
		"Section: misc",
		"Priority: optional",
		"Description: kiln's patching test package",
		" Installed from a local repository by the patching tests; it does nothing.",
		"",
	}, "\n")
	if err := os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, "usr", "share", pkg, "version"), []byte(version+"\n"), 0o644); err != nil {
		return "", err
	}
	deb := filepath.Join(dir, fmt.Sprintf("%s_%s_all.deb", pkg, version))
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, deb)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb --build %s: %w: %s", pkg, err, b)
	}
	return deb, nil
}
