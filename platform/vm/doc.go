// Package vm is the Platform driver that runs instances as virtual
// machines with QEMU on this machine: each instance boots the version's
// disk image (built by platform/vm/disk) through UEFI firmware (OVMF) on a
// qcow2 copy-on-write overlay, with KVM where /dev/kvm works and QEMU's
// own emulation (TCG) otherwise. Guests reach nothing (user-mode
// networking, restricted); the host reaches them through loopback ports
// QEMU forwards. Commands run inside through the kiln binary in the image,
// a guest agent on a virtio-serial port: no SSH key, no network route.
//
// Layout under <DataDir>/vm:
//
//	images/<hex>                 disk images copied out of the artifact store,
//	                             digest checked, read-only (overlays' backing files)
//	images/<hex>.boot/           a direct boot's kernel, initramfs and command line
//	images/<hex>.files           the root file system's manifest, for drift
//	instances/<id>/state.json    the instance's record (written by the lock holder)
//	instances/<id>/supervisor.lock  held by the supervisor for its whole life
//	instances/<id>/disk.qcow2    the overlay: everything the guest wrote
//	instances/<id>/console.log   the guest's serial console (ttyS0)
//	instances/<id>/qemu.log, supervisor.log
//	instances/<id>/{agent,exec,qmp}.sock  while it runs
//
// Every instance has a supervisor (SupervisorMain, run by re-executing the
// kiln binary as `kiln __vm-supervise`) that owns QEMU, which dies with it
// (parent-death signal), and serves commands to kiln processes on
// exec.sock, multiplexed over the one virtio-serial port to AgentMain in
// the guest (`kiln __vm-agent`). Drift asks the guest's kiln too
// (`kiln __file-drift`, internal/filedrift), handing it the manifest.
//
// The package must not write to a cached image after its copy is complete
// (what it derives from one, the direct boot's files and the drift
// manifest, is written beside it), nor leave QEMU processes or overlays
// behind after Destroy. It knows nothing of the registry.
package vm
