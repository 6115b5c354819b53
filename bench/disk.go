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
			p, accel, err := env.openVMPlatform(env.Dir, arts)
			if err != nil {
				return nil, err
			}
			suite, err := verify.Parse("kiln-bench-disk.yaml", []byte(diskSuite))
			if err != nil {
				return nil, err
			}
			// bootAndTest launches q and runs the suite in it: the time from
			// the launch to the tests passed.
			bootAndTest := func(id string, v *kiln.Version, q kiln.Artifact) (time.Duration, error) {
				defer func() { _ = p.Destroy(context.WithoutCancel(ctx), id) }()
				start := time.Now()
				if _, err := p.Launch(ctx, kiln.LaunchSpec{ID: id, Name: v.Name, Artifact: q, Timeout: 10 * time.Minute}); err != nil {
					return 0, err
				}
				rep, err := verify.Run(ctx, verify.InstanceExecutor{Platform: p, ID: id}, suite)
				if err != nil {
					return 0, err
				}
				if !rep.Passed() {
					return 0, fmt.Errorf("bench: %s's server tests failed on the VM platform", v.Name)
				}
				return time.Since(start), nil
			}
			opts := build.BenchOptions{DataDir: env.Dir, Registry: db, Artifacts: arts, Mirror: env.Mirror, Progress: env.Progress, Logger: env.Logger}
			res, err := build.DiskBench(ctx, opts, exe, "linux-image-amd64")
			if err != nil {
				return nil, err
			}
			launch, err := bootAndTest("bench-disk", res.Version, res.QCOW2)
			if err != nil {
				return nil, err
			}
			how := fmt.Sprintf("%s, %d checks over virtio-serial", accel, suite.Count())
			figs := []Figure{
				Seconds("disk.build", "qcow2 disk image step", res.Disk).Against("rootfs bake", res.Rootfs.Seconds(), "s").RatioAtMost(1.3).
					Noted("minbase + systemd-sysv, ca-certificates, linux-image-amd64; the bake is every step before the disk image"),
				Seconds("disk.launch", "launch to server tests passed", launch).AtMost(30).Noted("%s", how),
				{ID: "disk.qcow2", Title: "qcow2 size", Value: float64(res.QCOW2.Size) / (1 << 20), Unit: "MiB"},
			}
			if env.Quick {
				return figs, nil
			}
			// The same image with the kernel flavour made for virtual
			// machines (what Debian's genericcloud images install).
			cloud, err := build.DiskBench(ctx, opts, exe, "linux-image-cloud-amd64")
			if err != nil {
				return nil, err
			}
			launchCloud, err := bootAndTest("bench-disk-cloud", cloud.Version, cloud.QCOW2)
			if err != nil {
				return nil, err
			}
			return append(figs,
				Seconds("disk.launch.cloud", "launch to server tests passed, linux-image-cloud-amd64", launchCloud).AtMost(30).
					Noted("%s; the same image with the virtual machines' kernel flavour", how),
				Figure{ID: "disk.qcow2.cloud", Title: "qcow2 size, linux-image-cloud-amd64", Value: float64(cloud.QCOW2.Size) / (1 << 20), Unit: "MiB"},
			), nil
		},
	}
}
