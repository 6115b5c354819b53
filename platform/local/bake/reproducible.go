package bake

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln"
)

// ClampTree sets the modification (and access) time of every entry under
// root that is later than t to t, without following symlinks, so that a
// layer kept in the step cache has the times its tar has: a build that
// finds the layer in the cache and one that makes it again write the same
// artifact.
func ClampTree(ctx context.Context, root string, t time.Time) error {
	ts := unix.NsecToTimespec(t.Truncate(time.Second).UnixNano())
	limit := t.Unix()
	n := 0
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if st.Mtim.Sec < limit || (st.Mtim.Sec == limit && st.Mtim.Nsec == 0) {
			return nil
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("set the time of %s: %w", p, err)
		}
		return nil
	})
}

// PinFile returns an apt preferences file that pins every package of the
// manifest to its recorded version (priority 1001, so apt also downgrades
// to it). apt takes a pinned version only when the mirror (or a cached
// package list) still offers it; otherwise it takes its usual candidate,
// and the rebuilt manifest shows the difference.
func PinFile(pkgs []kiln.Package) []byte {
	sorted := append([]kiln.Package(nil), pkgs...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].Name != sorted[j].Name {
			return sorted[i].Name < sorted[j].Name
		}
		return sorted[i].Architecture < sorted[j].Architecture
	})
	var b strings.Builder
	b.WriteString("# kiln version rebuild: the package versions the version was built with\n")
	for i, p := range sorted {
		if i > 0 && sorted[i-1].Name == p.Name {
			continue // one architecture per image: the first entry pins it
		}
		fmt.Fprintf(&b, "\nPackage: %s\nPin: version %s\nPin-Priority: 1001\n", p.Name, p.Version)
	}
	return []byte(b.String())
}
