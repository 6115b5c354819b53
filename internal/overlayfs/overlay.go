package overlayfs

import (
	"fmt"
	"os"
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
// A layer path holding ',' or ':' is refused: overlayfs's mount options
// separate paths with them and have no way to carry them.
func (o *Overlay) Mount() error {
	if len(o.Lowers) == 0 {
		return fmt.Errorf("overlay %s: no lower directory", o.Target)
	}
	for _, d := range append([]string{o.Upper, o.Work}, o.Lowers...) {
		if strings.ContainsAny(d, ",:") {
			return fmt.Errorf("overlay %s: path %q holds ',' or ':', which overlayfs options cannot carry; choose a data directory without them", o.Target, d)
		}
	}
	for _, d := range []string{o.Upper, o.Work, o.Target} {
		if d == "" {
			continue
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("overlay: %w", err)
		}
	}
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
	opts := "lowerdir=" + strings.Join(o.Lowers, ":")
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
