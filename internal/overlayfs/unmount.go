package overlayfs

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Unmount unmounts target. When it is busy (a process still has a file or
// its working directory there, say one that is just being killed) it is
// detached lazily: gone from the mount table at once, so the directory
// can be removed, and released by the kernel when the last user lets go.
// A target that is not mounted is not an error.
func Unmount(target string) error {
	err := unix.Unmount(target, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil // not mounted (any more)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// UnmountAll unmounts every mount point at or under dir, in the order
// MountsUnder gives, and goes on past a failure so that one stuck mount
// does not keep the others.
func UnmountAll(dir string) error {
	mounts, err := MountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		if err := Unmount(m); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
