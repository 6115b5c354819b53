package debian

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

	"github.com/kiln-project/kiln"
)

// PackageUpdate is a package the mirror has a newer version of than a
// manifest: what a fresh bake would install now.
type PackageUpdate struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

// PackageIndex maps "name:arch" to the newest version in a mirror's
// Packages files.
type PackageIndex map[string]string

// Updates lists the packages of a manifest the index has a newer version
// of, by name.
func (ix PackageIndex) Updates(pkgs []kiln.Package) []PackageUpdate {
	var out []PackageUpdate
	for _, p := range pkgs {
		to, ok := ix[p.Name+":"+p.Architecture]
		if !ok {
			continue
		}
		if c, err := CompareVersions(to, p.Version); err == nil && c > 0 {
			out = append(out, PackageUpdate{Name: p.Name, From: p.Version, To: to})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ParsePackages reads a Debian Packages file (control paragraphs) into an
// index, keeping the highest version of each package and architecture.
func ParsePackages(r io.Reader, ix PackageIndex) error {
	return ScanParagraphs(r, []string{"Package", "Version", "Architecture"}, func(p Paragraph) error {
		name, ver := p["Package"], p["Version"]
		if name == "" || ver == "" {
			return nil
		}
		k := name + ":" + p["Architecture"]
		if old, ok := ix[k]; !ok {
			ix[k] = ver
		} else if c, err := CompareVersions(ver, old); err == nil && c > 0 {
			ix[k] = ver
		}
		return nil
	})
}

// Arch is the Debian architecture of this machine (amd64, arm64, i386…).
func Arch() string {
	switch runtime.GOARCH {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	}
	return runtime.GOARCH
}

// FetchIndex returns the package index of the given components of rel's
// suite, for this machine's architecture, at the snapshot rel names.
// Indexes are cached in cacheDir (when set) under the Release digest, so an
// unchanged mirror is not downloaded again. A nil client uses one with a
// two-minute timeout.
func FetchIndex(ctx context.Context, client *http.Client, cacheDir string, rel *Release, components []string) (PackageIndex, error) {
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Minute}
	}
	arch := Arch()
	key := sha256.Sum256([]byte(rel.Mirror + "|" + rel.Suite + "|" + strings.Join(components, ",") + "|" + arch + "|" + rel.Digest))
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
	for _, comp := range components {
		u := fmt.Sprintf("%s/dists/%s/%s/binary-%s/Packages.gz", strings.TrimRight(rel.Mirror, "/"), rel.Suite, comp, arch)
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

// fetchPackages downloads one gzipped Packages file into ix.
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
