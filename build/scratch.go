package build

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln/internal/layer"
)

// A fresh bake's bootstrap in memory. Nothing the bootstrap writes needs
// to be durable — the artifact store fsyncs the layers once, at the end —
// and on this kind of disk a bootstrap spends a good part of its time in
// the file system (creating, renaming and removing ~10,000 files under
// the journal) even with every fsync skipped. So when the machine has the
// memory, the bootstrap runs in a private tmpfs mounted in the build
// directory (a tracked mount: the build's close, or kiln's cleanup after
// a crash, unmounts it). The tree is then exported to the artifact store
// and copied to the step cache on disk at the same time; the steps after
// it stack on the tmpfs tree while the copy runs, and the tmpfs goes once
// the build's layers are stored. A bootstrap that fills the tmpfs runs
// again on disk.

// scratchMinAvailable is the memory the machine must have available for a
// bootstrap in memory; the tmpfs may take half of what is available.
const scratchMinAvailable = 2 << 30

// scratchSize is the size of a build's tmpfs given the memory available
// (a variable for the test that fills it).
var scratchSize = func(avail int64) int64 { return avail / 2 }

// memAvailable reads MemAvailable from /proc/meminfo (0 when unknown).
func memAvailable() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// scratch mounts the build's tmpfs and returns its path, or "" when the
// bootstrap should run on disk (Builder.DiskBootstrap, too little memory,
// or no tmpfs to be had: logged).
func (r *run) scratch() string {
	if r.b.DiskBootstrap {
		return ""
	}
	avail := memAvailable()
	if avail < scratchMinAvailable {
		r.rep.logf("bootstrap on disk: %d MiB of memory available, a bootstrap in memory needs %d MiB", avail>>20, scratchMinAvailable>>20)
		return ""
	}
	dir, size := r.w.path("scratch"), scratchSize(avail)
	if err := r.w.mountTmpfs(dir, size); err != nil {
		r.rep.logf("bootstrap on disk: %v", err)
		return ""
	}
	r.rep.logf("bootstrap in memory: a tmpfs of up to %d MiB at %s", size>>20, dir)
	return dir
}

// scratchFull reports whether the tmpfs at dir has less than 5% left:
// the bootstrap that failed there is run again on disk.
func scratchFull(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || st.Blocks == 0 {
		return false
	}
	return st.Bavail*20 < st.Blocks
}

// dropScratch waits for the copies to the step cache, then unmounts the
// tmpfs. The build calls it at its very end: the copies run beside the
// release step, the SBOMs and the registration, which read nothing in
// the cache they write. A copy that failed only costs a later build the
// unpacking of the layer from the artifact store (the cache entry
// without a tree), so it is logged, not fatal.
func (r *run) dropScratch() {
	if r.live == nil {
		return
	}
	r.copies.Wait()
	if r.copyErr != nil {
		r.b.Logger.Warn("a layer tree was not copied to the step cache; the next build that needs it unpacks it from the artifact store", "err", r.copyErr)
	}
	r.live = nil
	if err := r.w.unmount(r.w.path("scratch")); err != nil {
		r.b.Logger.Warn("build tmpfs not unmounted; the build's end unmounts it", "err", err)
	}
}

// treeOf returns where key's layer tree is now: in the tmpfs while its
// copy to the step cache runs, else in the cache.
func (r *run) treeOf(key string) string {
	if p, ok := r.live[key]; ok {
		return p
	}
	return r.cache.tree(key)
}

// keepFromScratch is keep for a tree in the tmpfs: it exports the tree to
// the artifact store in the background (the build waits for it before it
// lists its layers) and copies it to the step cache at the same time
// (waited for at the build's end, dropScratch); until then the build's
// later steps read the tree where it is.
func (r *run) keepFromScratch(ctx context.Context, key, name, dir string, wo layer.WriteOptions) {
	if r.live == nil {
		r.live = map[string]string{}
	}
	r.live[key] = dir
	tree := r.cache.tree(key)
	r.copies.Add(1)
	go func() {
		defer r.copies.Done()
		if err := copyTree(ctx, dir, tree); err != nil {
			r.copyErr = fmt.Errorf("copy the %s layer to the step cache: %w", name, err)
		}
	}()
	r.export(ctx, key, name, dir, wo)
}

// copyTree copies the tree src to dst with everything a layer holds:
// owners, modes, times, hard links, extended attributes (file
// capabilities), device nodes. It copies to a temporary directory in the
// cache (which kiln's cleanup removes when a crash leaves it) and
// renames, so dst is complete or absent; when a concurrent build put the
// same tree there first, that one is kept.
func copyTree(ctx context.Context, src, dst string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dst), tmpPrefix)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "cp", "-a", "--no-target-directory", src, tmp)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("cp -a: %w: %s", err, bytes.TrimSpace(out.Bytes()))
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.RemoveAll(tmp)
		if _, serr := os.Stat(dst); serr == nil {
			return nil // a concurrent build cached the same key
		}
		return err
	}
	return nil
}

// mountTmpfs mounts a tmpfs of at most size bytes at target, mode 0700,
// and records it like the overlays.
func (w *workdir) mountTmpfs(target string, size int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := os.MkdirAll(target, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", target, "tmpfs", 0, "mode=0700,size="+strconv.FormatInt(size, 10)); err != nil {
		return fmt.Errorf("mount a tmpfs at %s: %w", target, err)
	}
	w.mounts = append(w.mounts, target)
	return nil
}
