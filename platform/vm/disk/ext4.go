package disk

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
)

// addition is a file, directory or symlink the root filesystem gets on top
// of the tree.
type addition struct {
	path    string // absolute in the image
	content []byte // a regular file's content, unless host is set
	host    string // a host file to copy
	mode    os.FileMode
	link    string // symlink target
	// unlessPresent: left out when the tree has the path already.
	unlessPresent bool
}

// additions lists what the root filesystem gets besides the tree.
func additions(ids diskIDs, spec Spec, netOK bool) []addition {
	fstab := "# written by kiln when it built this disk image: the root by UUID,\n" +
		"# grown to the partition at boot (the partition is grown by systemd-repart)\n" +
		"UUID=" + ids.rootFS + " / ext4 defaults,x-systemd.growfs 0 1\n"
	repart := "# written by kiln: grow the root partition to the end of the disk at boot\n[Partition]\nType=root\n"
	as := []addition{
		{path: "/etc/fstab", content: []byte(fstab), mode: 0o644},
		{path: "/etc/repart.d/50-kiln-root.conf", content: []byte(repart), mode: 0o644},
		{path: "/etc/systemd/system/" + AgentUnitName, content: []byte(AgentUnit), mode: 0o644},
		{path: "/etc/systemd/system/sysinit.target.wants/" + AgentUnitName, link: "../" + AgentUnitName},
		// e2fsprogs' reaper of stale e2scrub snapshots needs LVM, which
		// this disk has none of; it is the longest unit of a TCG boot.
		// Masked unless the image configures the unit itself.
		{path: "/etc/systemd/system/e2scrub_reap.service", link: "/dev/null", unlessPresent: true},
	}
	if spec.Agent != "" {
		as = append(as, addition{path: AgentPath, host: spec.Agent, mode: 0o755})
	}
	if !netOK {
		network := "# written by kiln: DHCP on the virtual machine's Ethernet links\n[Match]\nType=ether\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
		as = append(as,
			addition{path: "/etc/systemd/network/80-kiln-dhcp.network", content: []byte(network), mode: 0o644},
			addition{path: "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service", link: "/lib/systemd/system/systemd-networkd.service"},
			addition{path: "/etc/systemd/system/sockets.target.wants/systemd-networkd.socket", link: "/lib/systemd/system/systemd-networkd.socket"},
		)
	}
	return as
}

// buildRoot writes the ext4 root filesystem image.
func buildRoot(ctx context.Context, root, img string, ids diskIDs, epoch time.Time, spec Spec, netOK bool) error {
	used, inodes, err := treeUsage(root)
	if err != nil {
		return fmt.Errorf("disk image: measure the tree: %w", err)
	}
	adds := additions(ids, spec, netOK)
	adds = slices.DeleteFunc(adds, func(a addition) bool {
		_, err := os.Lstat(filepath.Join(root, a.path))
		return a.unlessPresent && err == nil
	})
	for _, a := range adds {
		if a.host != "" {
			if fi, err := os.Stat(a.host); err == nil {
				used += fi.Size()
			}
		}
	}
	const mib = 1 << 20
	// Metadata (inode tables at 256 bytes an inode, journal, bitmaps) on top
	// of the data, and the free space asked for.
	nInodes := inodes + inodes/4 + 4096
	size := used + used/20 + nInodes*256 + 96*mib + int64(spec.FreeMiB)*mib
	size = (size + mib - 1) / mib * mib
	env := []string{"E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(epoch.Unix(), 10)}
	if err := run(ctx, env, toolMkfsExt4, "-q", "-F", "-t", "ext4", "-L", "root",
		"-U", ids.rootFS, "-E", "hash_seed="+ids.hashSeed, "-N", strconv.FormatInt(nInodes, 10),
		"-d", root, img, strconv.FormatInt(size/1024, 10)+"k"); err != nil {
		return err
	}

	script, err := debugfsScript(root, filepath.Dir(img), adds, epoch)
	if err != nil {
		return err
	}
	if err := debugfs(ctx, env, img, epoch, script); err != nil {
		return err
	}
	// mkfs.ext4 -d copies each file's ctime and atime, which the tree's
	// extraction set to now: stamp every inode in use.
	used2, err := usedInodes(ctx, img)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	ts := epoch.Format("20060102150405")
	for _, ino := range used2 {
		for _, f := range []string{"atime", "ctime", "crtime"} {
			fmt.Fprintf(&b, "sif <%d> %s %s\n", ino, f, ts)
		}
	}
	if err := debugfs(ctx, env, img, epoch, b.Bytes()); err != nil {
		return err
	}
	if _, err := output(ctx, env, toolE2fsck, "-f", "-n", img); err != nil {
		return kiln.Errorf(kiln.EINTERNAL, "the root filesystem kiln built does not check clean: %v", err)
	}
	return nil
}

// debugfsScript writes the additions' contents to files under work and
// returns the debugfs commands that put them into the image.
func debugfsScript(root, work string, adds []addition, epoch time.Time) ([]byte, error) {
	var b bytes.Buffer
	ts := epoch.Format("20060102150405")
	made := map[string]bool{}
	var mkdirs func(dir string)
	mkdirs = func(dir string) {
		if dir == "/" || made[dir] {
			return
		}
		if _, err := os.Lstat(filepath.Join(root, dir)); err == nil {
			return
		}
		mkdirs(path.Dir(dir))
		made[dir] = true
		fmt.Fprintf(&b, "mkdir %s\nsif %s mode 040755\nsif %s uid 0\nsif %s gid 0\nsif %s mtime %s\n", dir, dir, dir, dir, dir, ts)
	}
	for i, a := range adds {
		if strings.ContainsAny(a.path, " \"\n") {
			return nil, fmt.Errorf("disk image: path %q cannot be written by debugfs", a.path)
		}
		mkdirs(path.Dir(a.path))
		if _, err := os.Lstat(filepath.Join(root, a.path)); err == nil {
			fmt.Fprintf(&b, "rm %s\n", a.path)
		}
		if a.link != "" {
			fmt.Fprintf(&b, "symlink %s %s\nsif %s uid 0\nsif %s gid 0\nsif %s mtime %s\n", a.path, a.link, a.path, a.path, a.path, ts)
			continue
		}
		src := a.host
		if src == "" {
			src = filepath.Join(work, "add-"+strconv.Itoa(i))
			if err := os.WriteFile(src, a.content, 0o644); err != nil {
				return nil, fmt.Errorf("disk image: %w", err)
			}
		}
		fmt.Fprintf(&b, "write %s %s\nsif %s mode 0%o\nsif %s uid 0\nsif %s gid 0\nsif %s mtime %s\n",
			src, a.path, a.path, 0o100000|uint32(a.mode.Perm()), a.path, a.path, a.path, ts)
	}
	return b.Bytes(), nil
}

// debugfs runs a command file against the image. debugfs goes on after a
// failed command, so its error output is the verdict.
func debugfs(ctx context.Context, env []string, img string, epoch time.Time, script []byte) error {
	// The time debugfs stamps new inodes and the superblock with.
	script = append([]byte("set_current_time "+epoch.Format("20060102150405")+"\n"), script...)
	f, err := os.CreateTemp(filepath.Dir(img), "debugfs-*.cmd")
	if err != nil {
		return fmt.Errorf("disk image: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(script); err != nil {
		f.Close()
		return fmt.Errorf("disk image: %w", err)
	}
	f.Close()
	out, err := output(ctx, env, toolDebugfs, "-w", "-f", f.Name(), img)
	if err != nil {
		return err
	}
	// debugfs echoes each command as "debugfs: CMD"; anything else is an
	// error message.
	var bad []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "debugfs ") || strings.HasPrefix(l, "debugfs: ") || strings.HasPrefix(l, "Allocated inode:") || strings.HasPrefix(l, "Setting current time to") {
			continue
		}
		bad = append(bad, l)
	}
	if len(bad) > 0 {
		if len(bad) > 10 {
			bad = bad[:10]
		}
		return kiln.Errorf(kiln.EINTERNAL, "disk image: debugfs: %s", strings.Join(bad, "; "))
	}
	return nil
}

// usedInodes lists the inodes in use (the root's and the first
// non-reserved onwards), from dumpe2fs's per-group free lists.
func usedInodes(ctx context.Context, img string) ([]int64, error) {
	out, err := output(ctx, nil, toolDumpe2fs, img)
	if err != nil {
		return nil, err
	}
	return parseUsedInodes(out)
}

// parseUsedInodes reads dumpe2fs output: the inodes in use are those
// from the first non-reserved one on that no group lists as free, and the
// root directory. Only the groups' "Free inodes:" lines list inodes; the
// superblock's line of the same name is a count.
func parseUsedInodes(out []byte) ([]int64, error) {
	var perGroup, total, first int64
	var free []int64 // ranges, flattened pairs
	group := int64(-1)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "Inodes per group:"):
			perGroup, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(l, "Inodes per group:")), 10, 64)
		case strings.HasPrefix(l, "Inode count:"):
			total, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(l, "Inode count:")), 10, 64)
		case strings.HasPrefix(l, "First inode:"):
			first, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(l, "First inode:")), 10, 64)
		case strings.HasPrefix(l, "Group "):
			group++
		case group >= 0 && strings.HasPrefix(l, "Free inodes: "):
			for _, r := range strings.Split(strings.TrimPrefix(l, "Free inodes: "), ",") {
				r = strings.TrimSpace(r)
				if r == "" {
					continue
				}
				lo, hi, ok := strings.Cut(r, "-")
				a, err1 := strconv.ParseInt(lo, 10, 64)
				z := a
				var err2 error
				if ok {
					z, err2 = strconv.ParseInt(hi, 10, 64)
				}
				if err1 != nil || err2 != nil {
					return nil, fmt.Errorf("disk image: dumpe2fs: cannot read free inodes %q", r)
				}
				free = append(free, a, z)
			}
		}
	}
	if perGroup == 0 || total == 0 || first == 0 || group < 0 {
		return nil, fmt.Errorf("disk image: dumpe2fs: unexpected output")
	}
	isFree := make([]bool, total+1)
	for i := 0; i+1 < len(free); i += 2 {
		for n := free[i]; n <= free[i+1] && n <= total; n++ {
			isFree[n] = true
		}
	}
	inodes := []int64{2}
	for n := first; n <= total; n++ {
		if !isFree[n] {
			inodes = append(inodes, n)
		}
	}
	return inodes, nil
}
