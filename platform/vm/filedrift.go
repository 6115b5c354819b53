package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/filedrift"
	"github.com/kiln-project/kiln/internal/instancedir"
	"github.com/kiln-project/kiln/platform/vm/disk"
)

// filesSuffix names the manifest of a cached disk image's root file
// system (filedrift.Manifest, encoded): <image>.files.
const filesSuffix = ".files"

// maxGuestAnswer bounds what the guest's comparison may print (an
// instance that rewrote everything reports ~10⁵ paths).
const maxGuestAnswer = 64 << 20

// FileDrift compares the files of running instance id with its disk
// image's root file system, as the local platform compares its overlay:
// added, changed and deleted paths, and the count of volatile paths that
// changed. The host describes the image (a manifest, made once per image
// and kept beside it in the cache); the instance's own kiln binary walks
// its root and compares (filedrift.GuestMain), so the guest's disk is
// never read from outside.
func (p *Platform) FileDrift(ctx context.Context, id string) ([]kiln.DriftEntry, int, error) {
	rec, live, err := p.load(id)
	if err != nil {
		return nil, 0, err
	}
	if !live || rec.terminal() || !instancedir.Alive(rec.QemuPID, rec.QemuStart) {
		return nil, 0, kiln.Errorf(kiln.EUNAVAILABLE, "instance %s is not running; the VM platform compares files inside the running guest", id)
	}
	manifest, err := p.imageFiles(ctx, rec.Base)
	if err != nil {
		return nil, 0, fmt.Errorf("describe the image of %s: %w", id, err)
	}
	var out, errb bytes.Buffer
	code, err := p.Exec(ctx, id, []string{disk.AgentPath, filedrift.GuestCommand}, kiln.ExecIO{
		Stdin: bytes.NewReader(manifest), Stdout: &capped{b: &out, n: maxGuestAnswer}, Stderr: &capped{b: &errb, n: 64 << 10},
	})
	if err != nil {
		return nil, 0, fmt.Errorf("compare the files of %s: %w", id, err)
	}
	res, err := filedrift.ParseGuest(code, out.Bytes(), errb.Bytes(), disk.AgentPath)
	if err != nil {
		return nil, 0, fmt.Errorf("instance %s: %w", id, err)
	}
	p.log.Debug("file drift", "id", id, "walked", res.Walked, "hashed", res.Hashed, "hashed_bytes", res.HashedBytes, "files", len(res.Files), "ignored", res.Ignored)
	return res.Files, res.Ignored, nil
}

// capped keeps the first n bytes written to it and drops the rest.
type capped struct {
	b *bytes.Buffer
	n int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.n - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// imageFiles returns the encoded manifest of the cached disk image base's
// root file system, describing it the first time.
func (p *Platform) imageFiles(ctx context.Context, base string) ([]byte, error) {
	cached := base + filesSuffix
	if b, err := os.ReadFile(cached); err == nil {
		return b, nil
	}
	f, err := os.Open(base)
	if err != nil {
		return nil, err
	}
	format := sniffFormat(f)
	f.Close()
	if format == "" {
		return nil, kiln.Errorf(kiln.EINVALID, "%s is not a disk image", base)
	}
	t0 := time.Now()
	m, err := p.describeImage(ctx, base, format)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := m.Encode(&b); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(base), ".files-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b.Bytes()); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), cached); err != nil {
		return nil, err
	}
	p.log.Info("described a disk image's root file system for drift", "image", filepath.Base(base), "paths", len(m.Entries), "bytes", b.Len(), "elapsed", time.Since(t0).Round(time.Millisecond))
	return b.Bytes(), nil
}

// describeImage makes the manifest of the disk image's root file system
// without mounting it: the root partition is copied out (qemu-img dd),
// debugfs dumps its tree (for contents and link targets) and lists every
// directory (for modes, which a dump loses: chown clears setuid and
// setgid bits, and owners), and the root inode's change time is the
// stamp (the disk builder sets every inode's to the build's epoch).
func (p *Platform) describeImage(ctx context.Context, base, format string) (*filedrift.Manifest, error) {
	debugfs, err := exec.LookPath("debugfs")
	if err != nil {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "drift on the VM platform reads disk images with debugfs, which is not installed; install Debian's e2fsprogs")
	}
	work, err := os.MkdirTemp(filepath.Dir(base), ".files-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	img := filepath.Join(work, "root.img")
	if err := p.extractPartition(ctx, base, format, rootType, "root (x86-64)", img); err != nil {
		return nil, err
	}
	return describeRoot(ctx, debugfs, img, work)
}

// describeRoot makes the manifest of the ext4 file system image img,
// dumping its tree under work.
func describeRoot(ctx context.Context, debugfs, img, work string) (*filedrift.Manifest, error) {
	tree := filepath.Join(work, "tree")
	if err := os.Mkdir(tree, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(tree)
	if _, err := runDebugfs(ctx, debugfs, img, "rdump / "+tree+"\n"); err != nil {
		return nil, err
	}
	meta, err := listImage(ctx, debugfs, img)
	if err != nil {
		return nil, err
	}
	stat, err := runDebugfs(ctx, debugfs, img, "stat <2>\n")
	if err != nil {
		return nil, err
	}
	stamp, err := parseCtime(stat)
	if err != nil {
		return nil, err
	}
	m, err := filedrift.FromTree(ctx, tree)
	if err != nil {
		return nil, err
	}
	m.Stamp = stamp
	if m.Volatile, err = filedrift.ImageVolatile(tree); err != nil {
		return nil, err
	}
	for i := range m.Entries {
		e := &m.Entries[i]
		lm, ok := meta[e.Path]
		if !ok {
			return nil, fmt.Errorf("debugfs dumped %s, which its listing lacks", e.Path)
		}
		if lm.Mode.Type() != e.Mode.Type() {
			return nil, fmt.Errorf("debugfs dumped %s as %v, its listing says %v", e.Path, e.Mode.Type(), lm.Mode.Type())
		}
		e.Mode, e.UID, e.GID = lm.Mode, lm.UID, lm.GID
		delete(meta, e.Path)
	}
	// What a dump leaves out: device nodes, FIFOs and sockets.
	for p, lm := range meta {
		m.Entries = append(m.Entries, filedrift.Entry{Path: p, Mode: lm.Mode, UID: lm.UID, GID: lm.GID})
	}
	m.Sort()
	return m, nil
}

// runDebugfs runs a debugfs command file against img (read only) and
// returns its standard output; debugfs goes on after a failed command, so
// what it says on standard error is the verdict.
func runDebugfs(ctx context.Context, debugfs, img, script string) ([]byte, error) {
	cmdFile := img + ".cmd"
	if err := os.WriteFile(cmdFile, []byte(script), 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(cmdFile)
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, debugfs, "-f", cmdFile, img)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var bad []string
	for l := range strings.Lines(errb.String()) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "debugfs ") {
			continue
		}
		bad = append(bad, l)
	}
	if len(bad) > 5 {
		bad = bad[:5]
	}
	if err != nil {
		return nil, fmt.Errorf("debugfs on the image's root file system: %w: %s", err, strings.Join(bad, "; "))
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("debugfs on the image's root file system: %s", strings.Join(bad, "; "))
	}
	return out.Bytes(), nil
}

// listImage lists every path of the ext4 image img with its mode and
// owner, a level of directories per debugfs run (`ls -p` by inode number,
// so no name needs quoting).
func listImage(ctx context.Context, debugfs, img string) (map[string]filedrift.Meta, error) {
	out := map[string]filedrift.Meta{}
	type dir struct{ ino, path string }
	level := []dir{{"2", "/"}}
	for len(level) > 0 {
		var script strings.Builder
		byIno := map[string]string{}
		for _, d := range level {
			fmt.Fprintf(&script, "ls -p <%s>\n", d.ino)
			byIno[d.ino] = d.path
		}
		b, err := runDebugfs(ctx, debugfs, img, script.String())
		if err != nil {
			return nil, err
		}
		level = nil
		cur := ""
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if ino, ok := strings.CutPrefix(l, "debugfs: ls -p <"); ok {
				dirPath, known := byIno[strings.TrimSuffix(ino, ">")]
				if !known {
					return nil, fmt.Errorf("debugfs listed %q, which was not asked for", l)
				}
				cur = dirPath
				continue
			}
			if l == "" {
				continue
			}
			f := strings.Split(l, "/")
			if len(f) != 8 || f[0] != "" || f[7] != "" || cur == "" {
				return nil, fmt.Errorf("debugfs listing of %s: unexpected line %q (a name with a newline?)", cur, l)
			}
			name := f[5]
			if name == "." || name == ".." || name == "" || f[1] == "0" {
				continue // the directory itself, its parent, unused entries
			}
			mode, err1 := strconv.ParseUint(f[2], 8, 32)
			uid, err2 := strconv.ParseUint(f[3], 10, 32)
			gid, err3 := strconv.ParseUint(f[4], 10, 32)
			if err := errors.Join(err1, err2, err3); err != nil {
				return nil, fmt.Errorf("debugfs listing of %s: line %q: %w", cur, l, err)
			}
			p := path.Join(cur, name)
			m := filedrift.Meta{Mode: filedrift.ModeOf(uint32(mode)), UID: uint32(uid), GID: uint32(gid)}
			out[p] = m
			if m.Mode.IsDir() {
				level = append(level, dir{f[1], p})
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseCtime reads the change time from debugfs's `stat` output
// (" ctime: 0x6b1644c9:00000000 -- Mon Dec  7 05:31:53 2026").
func parseCtime(stat []byte) (int64, error) {
	for l := range strings.Lines(string(stat)) {
		v, ok := strings.CutPrefix(strings.TrimSpace(l), "ctime: 0x")
		if !ok {
			continue
		}
		hexSec, _, _ := strings.Cut(v, ":")
		hexSec, _, _ = strings.Cut(hexSec, " ")
		sec, err := strconv.ParseInt(hexSec, 16, 64)
		if err != nil {
			return 0, fmt.Errorf("debugfs stat: ctime %q: %w", v, err)
		}
		return sec, nil
	}
	return 0, fmt.Errorf("debugfs stat of the root directory says no ctime")
}
