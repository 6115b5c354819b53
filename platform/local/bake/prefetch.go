package bake

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Parallel downloads. apt fetches a bootstrap's packages one after the
// other over one connection to the mirror, twice (the essential packages,
// then the rest), and on this kind of link that is seconds of a fresh
// bake. When the mirror's lists are already current on the host (the
// bootstrap skips apt-get update), Prefetch asks the host's apt, on those
// lists, which packages the bootstrap's variant and packages come to
// (apt-get --print-uris, nothing installed, no lock taken), and downloads
// the ones the package cache lacks on several connections while
// mmdebstrap starts; the bootstrap's setup hook waits for it (Bootstrap.
// WaitFor) before it hands the cache to apt, which then downloads
// nothing it already has. Each file is checked against the size and hash
// the lists give before it enters the cache, and apt checks every cached
// package against the signed lists again before it uses one. A variant
// Prefetch does not know, or any failure, leaves the downloads to apt.

// Prefetch says what to fetch and where.
type Prefetch struct {
	Suite, Mirror, Variant string
	Components, Include    []string
	// Lists and ListsPrefix are Bootstrap's: the current lists.
	Lists string
	// DebCache receives the packages (Bootstrap.DebCache).
	DebCache string
	// Pins, when set, is Bootstrap.Pins.
	Pins string
	// Connections is how many downloads run at once (default 6).
	Connections int
	HTTP        *http.Client
}

// patterns returns the apt patterns of the variant's packages, after
// mmdebstrap(1)'s VARIANTS; nil for a variant Prefetch does not know.
func (p *Prefetch) patterns(arch string) []string {
	narrow := func(what string) string {
		return "?narrow(?or(?archive(^" + p.Suite + "$),?codename(^" + p.Suite + "$)),?architecture(" + arch + ")," + what + ")"
	}
	out := []string{narrow("?essential")}
	switch p.Variant {
	case "essential":
	case "apt":
		out = append(out, "apt")
	case "required", "minbase":
		out = append(out, narrow("?priority(required)"), "apt")
	case "", "debootstrap", "important":
		out = append(out, narrow("?priority(required)"), narrow("?priority(important)"), "apt")
	case "standard":
		out = append(out, narrow("?priority(required)"), narrow("?priority(important)"), narrow("?priority(standard)"), "apt")
	default:
		return nil
	}
	return append(out, p.Include...)
}

// debURI is one package apt would download.
type debURI struct {
	url, name string
	size      int64
	hash      string // "SHA256:hex", as apt prints it
}

// Resolve asks the host's apt which packages the bootstrap comes to.
func (p *Prefetch) Resolve(ctx context.Context) ([]debURI, error) {
	out, err := exec.CommandContext(ctx, "dpkg", "--print-architecture").Output()
	if err != nil {
		return nil, fmt.Errorf("dpkg --print-architecture: %w", err)
	}
	arch := strings.TrimSpace(string(out))
	pats := p.patterns(arch)
	if pats == nil {
		return nil, fmt.Errorf("variant %q: left to apt", p.Variant)
	}
	tmp, err := os.MkdirTemp("", "kiln-prefetch-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	comps := p.Components
	if len(comps) == 0 {
		comps = []string{"main"}
	}
	files := map[string]string{
		"sources.list": "deb " + p.Mirror + " " + p.Suite + " " + strings.Join(comps, " ") + "\n",
		"status":       "",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(tmp, n), []byte(c), 0o644); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"parts", "cache"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return nil, err
		}
	}
	prefs := filepath.Join(tmp, "parts")
	if p.Pins != "" {
		prefs = p.Pins
	}
	args := []string{"--print-uris", "-qq",
		"-o", "Debug::NoLocking=1",
		"-o", "Dir::State::Lists=" + p.Lists,
		"-o", "Dir::State::status=" + filepath.Join(tmp, "status"),
		"-o", "Dir::Etc::SourceList=" + filepath.Join(tmp, "sources.list"),
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(tmp, "parts"),
		"-o", "Dir::Etc::Preferences=" + prefs,
		"-o", "Dir::Etc::PreferencesParts=" + filepath.Join(tmp, "parts"),
		"-o", "Dir::Cache=" + filepath.Join(tmp, "cache"),
		"-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
		"-o", "APT::Architecture=" + arch, "-o", "APT::Architectures=" + arch,
		// Only to list the URIs: every file is checked against the
		// lists' hash here and by apt before it is used.
		"-o", "APT::Get::AllowUnauthenticated=true",
		"-o", "APT::Install-Recommends=false",
		"install"}
	cmd := exec.CommandContext(ctx, "apt-get", append(args, pats...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("apt-get --print-uris: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return parseURIs(out)
}

// parseURIs reads apt-get --print-uris lines: 'URL' NAME SIZE HASH.
func parseURIs(b []byte) ([]debURI, error) {
	var out []debURI
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "'") || !strings.HasSuffix(f[1], ".deb") || strings.ContainsAny(f[1], "/") {
			continue
		}
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("apt-get --print-uris: size %q of %s", f[2], f[1])
		}
		out = append(out, debURI{url: strings.Trim(f[0], "'"), name: f[1], size: size, hash: f[3]})
	}
	return out, sc.Err()
}

// Run resolves and downloads what the cache lacks; it returns how many
// packages it downloaded. Any error leaves the rest to apt.
func (p *Prefetch) Run(ctx context.Context) (int, error) {
	debs, err := p.Resolve(ctx)
	if err != nil {
		return 0, err
	}
	var todo []debURI
	for _, d := range debs {
		if fi, err := os.Stat(filepath.Join(p.DebCache, d.name)); err == nil && fi.Size() == d.size {
			continue
		}
		todo = append(todo, d)
	}
	conns := p.Connections
	if conns <= 0 {
		conns = 6
	}
	client := p.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	var (
		mu   sync.Mutex
		errs []error
		n    int
		wg   sync.WaitGroup
	)
	queue := make(chan debURI)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range queue {
				err := fetchDeb(ctx, client, d, p.DebCache)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					n++
				}
				mu.Unlock()
			}
		}()
	}
	for _, d := range todo {
		select {
		case queue <- d:
		case <-ctx.Done():
		}
	}
	close(queue)
	wg.Wait()
	return n, errors.Join(errs...)
}

// fetchDeb downloads one package into dir through a temporary name (the
// one the bootstrap's customize hook uses), checked against its size and
// hash before the rename.
func fetchDeb(ctx context.Context, client *http.Client, d debURI, dir string) error {
	algo, want, ok := strings.Cut(d.hash, ":")
	var h hash.Hash
	switch strings.ToLower(algo) {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	case "md5sum":
		h = md5.New()
	}
	if !ok || h == nil {
		return fmt.Errorf("%s: hash %q apt gave is not one kiln checks", d.name, d.hash)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", d.url, resp.Status)
	}
	tmp := filepath.Join(dir, ".tmp-"+strconv.Itoa(os.Getpid())+"-"+d.name+".part")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	written, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, d.size+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", d.url, err)
	case written != d.size:
		return fmt.Errorf("%s: %d bytes, the lists say %d", d.url, written, d.size)
	case hex.EncodeToString(h.Sum(nil)) != strings.ToLower(want):
		return fmt.Errorf("%s: %s differs from the lists'", d.url, algo)
	}
	return os.Rename(tmp, filepath.Join(dir, d.name))
}
