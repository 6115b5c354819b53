package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/debian"
)

// scanCache lists the cache's layers, trees and packages, least recently
// used first.
func scanCache(ctx context.Context, dir string, arts kiln.ArtifactStore, protected, held map[string]bool) ([]CacheItem, error) {
	byKey := map[string]*CacheItem{}
	item := func(key string) *CacheItem {
		if it, ok := byKey[key]; ok {
			return it
		}
		it := &CacheItem{Kind: CacheTree, ID: key, Held: held[key]}
		byKey[key] = it
		return it
	}
	steps, err := readDirNames(filepath.Join(dir, "steps"))
	if err != nil {
		return nil, err
	}
	for _, n := range steps {
		key, ok := strings.CutSuffix(n, ".json")
		if !ok || strings.HasPrefix(n, tmpPrefix) {
			continue
		}
		p := filepath.Join(dir, "steps", n)
		it := item(key)
		it.Kind = CacheLayer
		it.paths = append(it.paths, p)
		if fi, err := os.Stat(p); err == nil {
			it.LastUsed = later(it.LastUsed, fi.ModTime())
		}
		var e cacheEntry
		if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &e) == nil {
			it.Name = e.Step
			if e.Layer.Digest != "" && !protected[e.Layer.Digest] {
				it.tarball = e.Layer.Digest
				if arts != nil {
					if a, err := arts.Stat(ctx, e.Layer.Digest); err == nil {
						it.Size += a.Size
					}
				}
			}
		}
	}
	layers, err := readDirNames(filepath.Join(dir, "layers"))
	if err != nil {
		return nil, err
	}
	for _, key := range layers {
		if strings.HasPrefix(key, tmpPrefix) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := filepath.Join(dir, "layers", key)
		it := item(key)
		it.paths = append([]string{p}, it.paths...) // the tree goes first
		if fi, err := os.Stat(p); err == nil {
			it.LastUsed = later(it.LastUsed, fi.ModTime())
		}
		it.Size += diskUsage(p)
		if it.Name == "" {
			it.Name = "unpacked start or release layer"
		}
	}
	used, err := readDirNames(filepath.Join(dir, "used"))
	if err != nil {
		return nil, err
	}
	for _, key := range used {
		p := filepath.Join(dir, "used", key)
		it, ok := byKey[key]
		if !ok {
			continue // an entry being written, or one already gone
		}
		if fi, err := os.Stat(p); err == nil {
			it.LastUsed = fi.ModTime() // the marker, when there is one, is the truth
		}
		it.paths = append(it.paths, p)
	}
	items := make([]CacheItem, 0, len(byKey))
	for _, it := range byKey {
		items = append(items, *it)
	}
	apt := filepath.Join(dir, "apt")
	debs, err := scanDebs(apt, "")
	if err != nil {
		return nil, err
	}
	items = append(items, debs...)
	// Parsed lists shared by archive (before image lines had their own).
	parsed := map[string]string{}
	if names, _ := readDirNames(filepath.Join(apt, "parsed")); len(names) > 0 {
		for _, n := range names {
			parsed[n] = filepath.Join(apt, "parsed", n)
		}
	}
	lines, _ := readDirNames(filepath.Join(apt, "lines"))
	for _, line := range lines {
		ld := filepath.Join(apt, "lines", line)
		debs, err := scanDebs(ld, line+"/")
		if err != nil {
			return nil, err
		}
		items = append(items, debs...)
		if _, err := os.Stat(filepath.Join(ld, "parsed")); err == nil {
			parsed[line] = filepath.Join(ld, "parsed")
		}
	}
	items = append(items, scanParsed(parsed)...)
	items = append(items, scanSharedParsed(filepath.Join(apt, sharedParsedDir))...)
	sort.SliceStable(items, func(i, j int) bool {
		if !items[i].LastUsed.Equal(items[j].LastUsed) {
			return items[i].LastUsed.Before(items[j].LastUsed)
		}
		return items[i].ID < items[j].ID
	})
	return items, nil
}

// scanDebs lists apt/archives/*.deb. A package is named (Name set) when a
// Packages list in apt/lists still lists that version; with no lists at all
// every package counts as named.
//
// aptDir is the shared apt cache or an image line's (apt/lines/<image>,
// whose apt steps have their own lists and packages); idPrefix ("<image>/")
// keeps their items apart.
func scanDebs(aptDir, idPrefix string) ([]CacheItem, error) {
	archives := filepath.Join(aptDir, "archives")
	names, err := readDirNames(archives)
	if err != nil {
		return nil, err
	}
	listed, haveLists := listedDebs(filepath.Join(aptDir, "lists"))
	var items []CacheItem
	for _, n := range names {
		partial := strings.HasPrefix(n, tmpPrefix)
		if !strings.HasSuffix(n, ".deb") && !partial {
			continue
		}
		p := filepath.Join(archives, n)
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		it := CacheItem{Kind: CacheDeb, ID: idPrefix + n, Size: st.Blocks * 512, paths: []string{p},
			LastUsed: later(time.Unix(st.Mtim.Unix()), time.Unix(st.Atim.Unix()))}
		if partial {
			// One younger than an hour may be being written now.
			if time.Since(it.LastUsed) > time.Hour {
				it.partial, it.Name = true, "(partial)"
				items = append(items, it)
			}
			continue
		}
		if !haveLists || listed[n] {
			it.Name, _, _ = strings.Cut(n, "_")
		}
		items = append(items, it)
	}
	return items, nil
}

// scanParsed lists apt's parsed package lists (id → directory): one per
// image line, and per Debian archive from before lines had their own; last
// use is when apt last rebuilt or (to the day) read them.
func scanParsed(dirs map[string]string) []CacheItem {
	var items []CacheItem
	for id, p := range dirs {
		it := CacheItem{Kind: CacheParsed, ID: id, Name: "apt's parsed package lists", Size: diskUsage(p), paths: []string{p}}
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(p, "srcpkgcache.bin"), &st) == nil {
			it.LastUsed = later(time.Unix(st.Mtim.Unix()), time.Unix(st.Atim.Unix()))
		} else if unix.Lstat(p, &st) == nil {
			it.LastUsed = time.Unix(st.Mtim.Unix())
		}
		items = append(items, it)
	}
	return items
}

// scanSharedParsed lists the shared parsed caches bootstraps made
// (aptparsed.go), by key; last use is when an apt step last took a copy
// (their record's mtime) or one was made. A directory an interrupted
// build left (being made, or set aside) is partial once an hour old.
func scanSharedParsed(dir string) []CacheItem {
	names, _ := readDirNames(dir)
	var items []CacheItem
	for _, n := range names {
		p := filepath.Join(dir, n)
		it := CacheItem{Kind: CacheParsed, ID: n, Name: "apt's parsed package lists, shared (made after a bootstrap)", Size: diskUsage(p), paths: []string{p}}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		it.LastUsed = time.Unix(st.Mtim.Unix())
		if strings.HasPrefix(n, ".") {
			if time.Since(it.LastUsed) > time.Hour {
				it.partial, it.Name = true, "(partial)"
				items = append(items, it)
			}
			continue
		}
		if unix.Lstat(filepath.Join(p, parsedRecordName), &st) == nil {
			it.LastUsed = later(it.LastUsed, time.Unix(st.Mtim.Unix()))
		}
		items = append(items, it)
	}
	return items
}

// listedDebs returns the archive file names (NAME_VERSION_ARCH.deb, with
// ":" written "%3a" as apt does) of every package in the Packages lists.
func listedDebs(lists string) (map[string]bool, bool) {
	names, _ := readDirNames(lists)
	out := map[string]bool{}
	have := false
	for _, n := range names {
		if !strings.HasSuffix(n, "_Packages") {
			continue
		}
		f, err := os.Open(filepath.Join(lists, n))
		if err != nil {
			continue
		}
		have = true
		err = debian.ScanParagraphs(f, []string{"Package", "Version", "Architecture"}, func(p debian.Paragraph) error {
			if pkg, ver, arch := p["Package"], p["Version"], p["Architecture"]; pkg != "" && ver != "" && arch != "" {
				out[pkg+"_"+strings.ReplaceAll(ver, ":", "%3a")+"_"+arch+".deb"] = true
			}
			return nil
		})
		if err != nil {
			have = false // a list we could not read: do not judge by the lists
		}
		f.Close()
		if !have {
			return out, false
		}
	}
	return out, have
}

// diskUsage is the bytes the files under p take on disk, hard links once.
func diskUsage(p string) int64 {
	var total int64
	seen := map[uint64]bool{}
	// Unreadable entries are left out of the sum, not an error.
	_ = filepath.WalkDir(p, func(path string, _ fs.DirEntry, werr error) error {
		var st unix.Stat_t
		if werr != nil || unix.Lstat(path, &st) != nil {
			return nil //nolint:nilerr // counted as 0 bytes
		}
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total
}

func readDirNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
