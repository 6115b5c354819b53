package disk

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// unpacked extracts the test rootfs once for a benchmark.
func unpacked(b *testing.B) (string, string) {
	tar := testRootfs(b)
	root := filepath.Join(b.TempDir(), "root")
	if err := unpack(context.Background(), tar, root); err != nil {
		b.Fatal(err)
	}
	return tar, root
}

// BenchmarkDiskVsRootfsTar measures, from the same unpacked tree, what
// kiln's rootfs artifact costs (tar of the tree, as the bake ends) and what
// a disk image costs (raw, and qcow2).
func BenchmarkDiskVsRootfsTar(b *testing.B) {
	tarball, root := unpacked(b)
	out := b.TempDir()
	seed, err := fileDigest(tarball)
	if err != nil {
		b.Fatal(err)
	}
	exe, _ := os.Executable()
	b.Run("rootfs-tar", func(b *testing.B) {
		for b.Loop() {
			cmd := exec.Command("tar", "--create", "--file", filepath.Join(out, "rootfs.tar"), "--directory", root,
				"--numeric-owner", "--xattrs", "--xattrs-include=*", "--sort=name", ".")
			if o, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, o)
			}
		}
		reportSize(b, filepath.Join(out, "rootfs.tar"))
	})
	for _, f := range []Format{Raw, QCOW2} {
		b.Run("disk-"+string(f), func(b *testing.B) {
			var res *Result
			for b.Loop() {
				res, err = Build(context.Background(), Spec{Rootfs: root, Seed: seed, Output: filepath.Join(out, "disk."+string(f)), Format: f, Agent: exe})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(res.Size)/(1<<20), "MiB")
		})
	}
}

func reportSize(b *testing.B, path string) {
	if fi, err := os.Stat(path); err == nil {
		b.ReportMetric(float64(fi.Size())/(1<<20), "MiB")
	}
}
