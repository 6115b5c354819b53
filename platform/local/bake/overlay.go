package bake

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Overlay is an overlayfs mount: Lowers (top first) under an optional Upper.
// Without Upper the mount is read-only.
type Overlay struct {
	Lowers []string
	Upper  string
	Work   string
	Target string
}

// Mount mounts the overlay at o.Target, creating Upper, Work and Target.
// Copy-up features that write extra overlay xattrs (redirect_dir, metacopy,
// index) are off, so the upper directory is a plain layer.
func (o *Overlay) Mount() error {
	if len(o.Lowers) == 0 {
		return fmt.Errorf("overlay %s: no lower directory", o.Target)
	}
	for _, d := range []string{o.Upper, o.Work, o.Target} {
		if d == "" {
			continue
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("overlay: %w", err)
		}
	}
	lowers := strings.Join(o.Lowers, ":")
	if len(o.Lowers) == 1 && o.Upper == "" {
		// overlayfs needs two lower layers when there is no upper; a
		// single read-only layer is a read-only bind mount.
		if err := unix.Mount(o.Lowers[0], o.Target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s at %s: %w", o.Lowers[0], o.Target, err)
		}
		if err := unix.Mount("", o.Target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			_ = unix.Unmount(o.Target, unix.MNT_DETACH)
			return fmt.Errorf("remount %s read-only: %w", o.Target, err)
		}
		return nil
	}
	opts := "lowerdir=" + lowers
	if o.Upper != "" {
		opts += ",upperdir=" + o.Upper + ",workdir=" + o.Work
	}
	opts += ",redirect_dir=off,metacopy=off,index=off,xino=off"
	if len(opts) >= unix.Getpagesize() {
		return fmt.Errorf("overlay %s: %d layers make the mount options longer than a page; squash the image (fewer steps)", o.Target, len(o.Lowers))
	}
	flags := uintptr(0)
	if o.Upper == "" {
		flags = unix.MS_RDONLY
	}
	if err := unix.Mount("overlay", o.Target, "overlay", flags, opts); err != nil {
		return fmt.Errorf("mount overlay at %s: %w", o.Target, err)
	}
	return nil
}

// Unmount unmounts target, lazily when it is busy.
func Unmount(target string) error {
	err := unix.Unmount(target, 0)
	if err == unix.EBUSY {
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	if err == unix.EINVAL || err == unix.ENOENT {
		return nil // not mounted
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// MountsUnder lists the mount points at or below dir in this process's
// mount namespace, deepest first (the order to unmount them).
func MountsUnder(dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// unescapeMount decodes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
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
