package bench

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/verify"
)

// diskSuite is the server tests the disk figure's VM passes: what
// basic-linux's tests/basic-linux.yaml checks of the image itself.
const diskSuite = `package:
  systemd-sysv:
    installed: true
  ca-certificates:
    installed: true
file:
  /etc/kiln-release:
    exists: true
    contains:
      - "image=kiln-bench-disk"
  /etc/ssl/certs/ca-certificates.crt:
    exists: true
command:
  cat /etc/kiln-release:
    exit-status: 0
user:
  root:
    exists: true
    uid: 0
`

// Disk is the disk image figures (docs/vm.md): one fresh build of minbase
// with systemd and linux-image-amd64 as formats = ["rootfs", "qcow2"], its
// disk image step against the root filesystem bake of the same build; the
// qcow2 launched on the VM platform until its server tests passed (TCG
// where KVM is unusable, as here); and the qcow2's size.
func Disk() Measure {
	return Measure{
		ID: "disk", Title: "disk image build vs rootfs bake, launch to server tests passed on the VM platform, qcow2 size",
		Needs: "root, mmdebstrap, systemd-nspawn, qemu-system-x86_64, qemu-img, mkfs.ext4, mkfs.vfat, mcopy, sfdisk",
		Check: needRootTools("mmdebstrap", "systemd-nspawn", "qemu-system-x86_64", "qemu-img", "mkfs.ext4", "mkfs.vfat", "mcopy", "sfdisk"),
		Run: func(ctx context.Context, env *Env) ([]Figure, error) {
			db, closeDB, err := env.openStore(ctx, "sqlite", time.Now)
			if err != nil {
				return nil, err
			}
			defer closeDB()
			arts, err := env.openArtifacts(env.Dir)
			if err != nil {
				return nil, err
			}
			exe, err := os.Executable()
			if err != nil {
				return nil, err
			}
			res, err := build.DiskBench(ctx, build.BenchOptions{DataDir: env.Dir, Registry: db, Artifacts: arts,
				Mirror: env.Mirror, Progress: env.Progress, Logger: env.Logger}, exe)
			if err != nil {
				return nil, err
			}
			p, accel, err := env.openVMPlatform(env.Dir, arts)
			if err != nil {
				return nil, err
			}
			suite, err := verify.Parse("kiln-bench-disk.yaml", []byte(diskSuite))
			if err != nil {
				return nil, err
			}
			id := "bench-disk"
			defer func() { _ = p.Destroy(context.WithoutCancel(ctx), id) }()
			start := time.Now()
			if _, err := p.Launch(ctx, kiln.LaunchSpec{ID: id, Name: res.Version.Name, Artifact: res.QCOW2, Timeout: 10 * time.Minute}); err != nil {
				return nil, err
			}
			rep, err := verify.Run(ctx, verify.InstanceExecutor{Platform: p, ID: id}, suite)
			if err != nil {
				return nil, err
			}
			if !rep.Passed() {
				return nil, fmt.Errorf("bench: %s's server tests failed on the VM platform", res.Version.Name)
			}
			launch := time.Since(start)
			return []Figure{
				Seconds("disk.build", "qcow2 disk image step", res.Disk).Against("rootfs bake", res.Rootfs.Seconds(), "s").RatioAtMost(1.3).
					Noted("minbase + systemd-sysv, ca-certificates, linux-image-amd64; the bake is every step before the disk image"),
				Seconds("disk.launch", "launch to server tests passed", launch).AtMost(30).
					Noted("%s, %d checks over virtio-serial", accel, suite.Count()),
				{ID: "disk.qcow2", Title: "qcow2 size", Value: float64(res.QCOW2.Size) / (1 << 20), Unit: "MiB"},
			}, nil
		},
	}
}
