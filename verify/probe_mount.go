package verify

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// defaultMountTimeout is goss's mount timeout; it bounds statfs, which
// hangs on a dead network file system.
const defaultMountTimeout = time.Second

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	point   string
	opts    string // per-mount options: rw,nosuid,nodev
	fstype  string
	source  string
	vfsOpts string // super block options: rw,mode=755
}

// mountValues answers a mount resource from /proc/self/mountinfo. When
// several mounts stack on one point, the last (the one visible there) is
// reported. opts are the mount's options without duplicates, vfs-opts the
// file system's; usage is the percentage of blocks in use, as goss and df
// count it.
func (s *system) mountValues(r *Resource) valuer {
	var (
		once  sync.Once
		found *mountInfo
		err   error
	)
	return func(prop string) (any, error) {
		once.Do(func() { found, err = findMount(filepath.Join(s.proc, "self", "mountinfo"), r.Target) })
		if err != nil {
			return nil, err
		}
		if prop == "exists" {
			return found != nil, nil
		}
		if found == nil {
			return nil, fmt.Errorf("%s is not a mount point: %w", r.Target, errNotExist)
		}
		switch prop {
		case "opts":
			return uniq(splitMountOpts(found.opts)), nil
		case "vfs-opts":
			return splitMountOpts(found.vfsOpts), nil
		case "source":
			return found.source, nil
		case "filesystem":
			return found.fstype, nil
		case "usage":
			return mountUsage(r.Target, timeout(r, defaultMountTimeout))
		}
		return nil, fmt.Errorf("unknown property %q", prop)
	}
}

// findMount returns the last mount on point in a mountinfo file, or nil.
func findMount(path, point string) (*mountInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	point = filepath.Clean(point)
	var found *mountInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m, ok := parseMountInfo(sc.Text())
		if ok && m.point == point {
			found = &m
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return found, nil
}

// parseMountInfo reads "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3
// /dev/root rw,errors=continue" (proc(5)): fields 5 and 6, then after the
// optional fields and "-", the type, the source and the super options.
func parseMountInfo(line string) (mountInfo, bool) {
	fields := strings.Fields(line)
	sep := slices.Index(fields, "-")
	if len(fields) < 6 || sep < 6 || len(fields) < sep+3 {
		return mountInfo{}, false
	}
	m := mountInfo{point: unescapeMount(fields[4]), opts: fields[5], fstype: fields[sep+1], source: unescapeMount(fields[sep+2])}
	if len(fields) > sep+3 {
		m.vfsOpts = fields[sep+3]
	}
	return m, true
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
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

// splitMountOpts splits options at commas outside double quotes.
func splitMountOpts(s string) []string {
	quoted := false
	out := strings.FieldsFunc(s, func(r rune) bool {
		if r == '"' {
			quoted = !quoted
		}
		return !quoted && r == ','
	})
	if out == nil {
		out = []string{}
	}
	return out
}

func uniq(in []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// mountUsage is the percentage of the file system's blocks in use, rounded.
func mountUsage(point string, limit time.Duration) (int, error) {
	type result struct {
		st  unix.Statfs_t
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.err = unix.Statfs(point, &r.st)
		done <- r
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return 0, fmt.Errorf("statfs %s: %w", point, r.err)
		}
		if r.st.Blocks == 0 {
			return 0, nil
		}
		return int(math.Round((1 - float64(r.st.Bfree)/float64(r.st.Blocks)) * 100)), nil
	case <-time.After(limit):
		return 0, fmt.Errorf("statfs %s did not answer within %s", point, limit)
	}
}
