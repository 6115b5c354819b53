package pipeline

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/advisory"
	"github.com/kiln-project/kiln/deb822"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/platform/local/bake"
)

// PackageUpdate is a package the mirror has a newer version of than the
// version's manifest: what a fresh bake would install now.
type PackageUpdate struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

// FormatUpdates renders "openssl 3.0.11 → 3.0.13, …", at most n entries.
func FormatUpdates(ups []PackageUpdate, n int) string {
	var parts []string
	for i, u := range ups {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(ups)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s → %s", u.Name, u.From, u.To))
	}
	return strings.Join(parts, ", ")
}

// PackageIndex maps "name:arch" to the newest version in a mirror's
// Packages files.
type PackageIndex map[string]string

// Updates compares a manifest with the index.
func (ix PackageIndex) Updates(pkgs []kiln.Package) []PackageUpdate {
	var out []PackageUpdate
	for _, p := range pkgs {
		to, ok := ix[p.Name+":"+p.Architecture]
		if !ok {
			continue
		}
		if c, err := advisory.CompareVersions(to, p.Version); err == nil && c > 0 {
			out = append(out, PackageUpdate{Name: p.Name, From: p.Version, To: to})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ParsePackages reads a Debian Packages file (control paragraphs) into an
// index, keeping the highest version of each package and architecture.
func ParsePackages(r io.Reader, ix PackageIndex) error {
	return deb822.Scan(r, []string{"Package", "Version", "Architecture"}, func(p deb822.Paragraph) error {
		name, ver := p["Package"], p["Version"]
		if name == "" || ver == "" {
			return nil
		}
		k := name + ":" + p["Architecture"]
		if old, ok := ix[k]; !ok {
			ix[k] = ver
		} else if c, err := advisory.CompareVersions(ver, old); err == nil && c > 0 {
			ix[k] = ver
		}
		return nil
	})
}

// debArch is the Debian architecture of this machine.
func debArch() string {
	switch runtime.GOARCH {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	}
	return runtime.GOARCH
}

// updates fetches (or reads from the cache, by Release digest) the
// mirror's package index and compares the manifest with it.
func (c *Checker) updates(ctx context.Context, d *definition.Debian, rel *bake.Release, pkgs []kiln.Package) ([]PackageUpdate, error) {
	ix, err := FetchIndex(ctx, c.HTTP, c.CacheDir, d, rel)
	if err != nil {
		return nil, err
	}
	return ix.Updates(pkgs), nil
}

// FetchIndex returns the package index of a suite's components for this
// machine's architecture at the snapshot rel names. Indexes are cached in
// cacheDir (when set) under the Release digest, so an unchanged mirror is
// not downloaded again.
func FetchIndex(ctx context.Context, client *http.Client, cacheDir string, d *definition.Debian, rel *bake.Release) (PackageIndex, error) {
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Minute}
	}
	arch := debArch()
	comps := d.Components
	if len(comps) == 0 {
		comps = definition.DefaultComponents
	}
	key := sha256.Sum256([]byte(d.Mirror + "|" + d.Suite + "|" + strings.Join(comps, ",") + "|" + arch + "|" + rel.Digest))
	cache := ""
	if cacheDir != "" {
		cache = filepath.Join(cacheDir, "packages-"+hex.EncodeToString(key[:8])+".txt")
		if f, err := os.Open(cache); err == nil {
			defer f.Close()
			ix := PackageIndex{}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if k, v, ok := strings.Cut(sc.Text(), " "); ok {
					ix[k] = v
				}
			}
			if sc.Err() == nil {
				return ix, nil
			}
		}
	}
	ix := PackageIndex{}
	for _, comp := range comps {
		u := fmt.Sprintf("%s/dists/%s/%s/binary-%s/Packages.gz", strings.TrimRight(d.Mirror, "/"), d.Suite, comp, arch)
		if err := fetchPackages(ctx, client, u, ix); err != nil {
			return nil, err
		}
	}
	if cache != "" {
		if err := writeIndex(cache, ix); err != nil {
			return nil, err
		}
	}
	return ix, nil
}

func fetchPackages(ctx context.Context, client *http.Client, u string, ix PackageIndex) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return kiln.Errorf(kiln.EUNAVAILABLE, "cannot download the package index %s: %v; check the mirror and the network", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return kiln.Errorf(kiln.EUNAVAILABLE, "the package index %s answered %s; check debian.mirror and debian.suite", u, resp.Status)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		return kiln.Errorf(kiln.EUNAVAILABLE, "the package index %s is not gzip data: %v", u, err)
	}
	if err := ParsePackages(zr, ix); err != nil {
		return fmt.Errorf("read %s: %w", u, err)
	}
	return nil
}

// writeIndex saves an index atomically (temporary file, then rename).
func writeIndex(path string, ix PackageIndex) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".packages-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	keys := make([]string, 0, len(ix))
	for k := range ix {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%s %s\n", k, ix[k])
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
