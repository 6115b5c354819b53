package overlayfs

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// MountsUnder lists the mount points at or under dir in this process's
// mount namespace, in the order to unmount them: children before their
// parents, and of mounts stacked on one point the top one first.
//
// Children first, because a mount with another mounted inside it is busy
// and would only be detached lazily. A child's path is always longer than
// its parent's, so deeper paths go first; the kernel's listing order is
// not enough, since it lists mounts by creation (Linux 6.8 and later) and
// a mount moved under a newer one is listed before its new parent. Among
// mounts on the same point, the later one is on top and must go first, or
// the unmount would hit the covered one, which is busy under it.
func MountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return mountsUnder(f, dir)
}

// mountsUnder reads mountinfo lines from r.
func mountsUnder(r io.Reader, dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescape(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	slices.Reverse(out) // the later of two stacked mounts first
	slices.SortStableFunc(out, func(a, b string) int {
		return strings.Count(b, "/") - strings.Count(a, "/") // deeper first
	})
	return out, nil
}

// unescape decodes mountinfo's octal escapes (\040 for a space, \134 for
// a backslash); anything else stays as written.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
