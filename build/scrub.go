package build

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// What varies from one bake of the same inputs to the next, and is taken
// out of every image in the release step (docs/supply-chain.md):
//
//   - scrubRemove: dpkg's and apt's logs, ldconfig's aux cache (inode
//     numbers and times), systemd's random seed and credential secret,
//     dbus's machine id, the SSH host keys (a new set is made at first
//     boot, see sshKeygenUnit);
//   - scrubEmptyDirs: apt's package lists and downloaded packages, its
//     parsed caches, fontconfig's caches (they hold the fonts' mtimes;
//     fc-cache remakes them when needed);
//   - /etc/machine-id is left empty (systemd makes one at first boot, as
//     in Debian's cloud images), and every other file under /var/log is
//     left empty with its owner and mode.
var (
	scrubRemove = []string{
		"var/log/dpkg.log", "var/log/alternatives.log", "var/log/bootstrap.log",
		"var/log/apt/history.log", "var/log/apt/term.log", "var/log/apt/eipp.log.xz",
		"var/cache/ldconfig/aux-cache",
		"var/lib/systemd/random-seed", "var/lib/systemd/credential.secret",
		"var/lib/dbus/machine-id",
	}
	scrubEmptyDirs = []scrubDir{
		{"var/lib/apt/lists", func(n string) bool { return n != "lock" }},
		{"var/lib/apt/lists/partial", nil},
		{"var/cache/apt", func(n string) bool { return strings.HasSuffix(n, ".bin") }},
		{"var/cache/apt/archives", func(n string) bool { return strings.HasSuffix(n, ".deb") }},
		{"var/cache/apt/archives/partial", nil},
		{"var/cache/fontconfig", nil},
		{"etc/ssh", func(n string) bool { return strings.HasPrefix(n, "ssh_host_") && strings.Contains(n, "_key") }},
	}
)

// scrubDir names the regular files to remove in a directory (nil match:
// all of them).
type scrubDir struct {
	dir   string
	match func(name string) bool
}

// sshKeygenUnit makes the SSH host keys at first boot, before the SSH
// server starts, when the image has none (kiln images ship none).
const sshKeygenUnit = `[Unit]
Description=Generate SSH host keys (kiln images ship none)
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service ssh.socket

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target ssh.service
`

const sshKeygenUnitName = "kiln-ssh-hostkeys.service"

// scrub removes from the image's root what differs between two bakes of
// the same inputs (see scrubRemove). It returns the paths it changed, for
// the build log.
func scrub(root *os.Root) ([]string, error) {
	var changed []string
	for _, p := range scrubRemove {
		fi, err := root.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue // absent, or a link (dbus's machine-id → /etc/machine-id)
		}
		if err := root.Remove(p); err != nil {
			return changed, fmt.Errorf("remove /%s: %w", p, err)
		}
		changed = append(changed, "/"+p)
	}
	for _, d := range scrubEmptyDirs {
		ents, err := fs.ReadDir(root.FS(), d.dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || (d.match != nil && !d.match(e.Name())) {
				continue
			}
			p := path.Join(d.dir, e.Name())
			if err := root.Remove(p); err != nil {
				return changed, fmt.Errorf("remove /%s: %w", p, err)
			}
			changed = append(changed, "/"+p)
		}
	}
	if err := fs.WalkDir(root.FS(), "var/log", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil || fi.Size() == 0 {
			return err
		}
		if err := truncateInRoot(root, p); err != nil {
			return err
		}
		changed = append(changed, "/"+p)
		return nil
	}); err != nil {
		return changed, fmt.Errorf("empty /var/log: %w", err)
	}
	if fi, err := root.Lstat("etc/machine-id"); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
		if err := truncateInRoot(root, "etc/machine-id"); err != nil {
			return changed, err
		}
		changed = append(changed, "/etc/machine-id")
	}
	if fi, err := root.Lstat("usr/sbin/sshd"); err == nil && !fi.IsDir() {
		if err := installSSHKeygen(root); err != nil {
			return changed, err
		}
		changed = append(changed, "/etc/systemd/system/"+sshKeygenUnitName)
	}
	return changed, nil
}

// scrubLayer scrubs one step's layer (an overlay's upper directory): the
// files the release step would take out of the image are taken out of the
// layer that wrote them. Whiteouts are not regular files and stay.
func scrubLayer(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	_, err = scrub(root)
	return err
}

func truncateInRoot(root *os.Root, p string) error {
	f, err := root.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("empty /%s: %w", p, err)
	}
	return f.Close()
}

// installSSHKeygen installs and enables sshKeygenUnit.
func installSSHKeygen(root *os.Root) error {
	unit := "etc/systemd/system/" + sshKeygenUnitName
	if err := replaceInRoot(root, unit, bytes.NewReader([]byte(sshKeygenUnit)), 0o644); err != nil {
		return fmt.Errorf("install /%s: %w", unit, err)
	}
	for _, wants := range []string{"etc/systemd/system/multi-user.target.wants", "etc/systemd/system/ssh.service.wants"} {
		if err := root.MkdirAll(wants, 0o755); err != nil {
			return err
		}
		link := path.Join(wants, sshKeygenUnitName)
		if err := root.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := root.Symlink("/"+unit, link); err != nil {
			return fmt.Errorf("enable %s: %w", sshKeygenUnitName, err)
		}
	}
	return nil
}
