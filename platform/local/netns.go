package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named network namespaces live, as with `ip netns`, so
// that `ip netns exec NAME …` works on kiln's instances too.
const netnsDir = "/run/netns"

// createNetns creates the named network namespace with only its loopback
// interface, up. The instance gets no other interface: it is reached through
// the supervisor's forwarders and has no route out.
//
// It is done with unshare(2) and a bind mount rather than by running
// `ip netns add`, so that no iproute2 is needed and every step's error is
// ours to report; the result is the same file `ip` would make.
func createNetns(name string) (err error) {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return fmt.Errorf("create network namespace %s: %w", name, err)
	}
	path := filepath.Join(netnsDir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("create network namespace %s: %w", name, err)
	}
	f.Close()
	defer func() {
		if err != nil {
			_ = deleteNetns(name)
		}
	}()

	errc := make(chan error, 1)
	go func() {
		// unshare changes this thread only; lock it, and leave it locked
		// (so the runtime discards it) if it cannot go back.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		err = unix.Mount(self, path, "", unix.MS_BIND, "")
		if err2 := netns.Set(orig); err2 != nil {
			errc <- errors.Join(err, fmt.Errorf("return to host network namespace: %w", err2))
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			err = fmt.Errorf("bind mount: %w", err)
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("create network namespace %s: %w", name, err)
	}

	h, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", name, err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return fmt.Errorf("network namespace %s: netlink: %w", name, err)
	}
	defer nl.Close()
	lo, err := nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", name, err)
	}
	if err := nl.LinkSetUp(lo); err != nil {
		return fmt.Errorf("network namespace %s: bring lo up: %w", name, err)
	}
	return nil
}

// deleteNetns removes the named network namespace; a missing one is fine.
// The kernel frees the namespace once no process is left in it.
func deleteNetns(name string) error {
	path := filepath.Join(netnsDir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete network namespace %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete network namespace %s: %w", name, err)
	}
	return nil
}

// netnsExists reports whether /run/netns/NAME is there.
func netnsExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}
