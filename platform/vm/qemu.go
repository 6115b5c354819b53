package vm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
	"github.com/kiln-project/kiln/platform/vm/disk"
	"golang.org/x/sys/unix"
)

// Accelerators QEMU runs guests with.
const (
	AccelAuto = ""    // KVM when /dev/kvm works, else TCG
	AccelKVM  = "kvm" // hardware virtualisation; an error when unusable
	AccelTCG  = "tcg" // QEMU's own emulation: slower, works everywhere
)

// firmwarePaths are where Debian's ovmf package puts a UEFI firmware image
// usable with -bios.
var firmwarePaths = []string{"/usr/share/ovmf/OVMF.fd", "/usr/share/qemu/OVMF.fd"}

func findFirmware() (string, error) {
	for _, p := range firmwarePaths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", kiln.Errorf(kiln.EUNAVAILABLE, "the VM platform boots disks with UEFI firmware, and none is installed (looked for %s); install ovmf (apt-get install ovmf)", strings.Join(firmwarePaths, ", "))
}

// kvmUsable says whether KVM can run guests here, and if not, why. It
// checks cheaply: the CPU's virtualisation flag, then that /dev/kvm opens,
// speaks API version 12 and creates a VM. (Where /dev/kvm exists but the
// CPU flag is missing, QEMU starts and then spins forever.)
func kvmUsable() (bool, string) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return false, "/dev/kvm does not exist"
	}
	cpu, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		flags := ""
		for _, l := range strings.Split(string(cpu), "\n") {
			if strings.HasPrefix(l, "flags") {
				flags = " " + l + " "
				break
			}
		}
		if !strings.Contains(flags, " vmx ") && !strings.Contains(flags, " svm ") {
			return false, "/dev/kvm exists but the CPU offers no virtualisation (no vmx or svm flag in /proc/cpuinfo; a nested guest without nested virtualisation)"
		}
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Sprintf("/dev/kvm exists but cannot be opened (%v); add the user to group kvm", err)
	}
	defer f.Close()
	const kvmGetAPIVersion, kvmCreateVM = 0xAE00, 0xAE01
	v, err := unix.IoctlRetInt(int(f.Fd()), kvmGetAPIVersion)
	if err != nil || v != 12 {
		return false, fmt.Sprintf("/dev/kvm exists but answers API version %d (%v), not 12", v, err)
	}
	vmfd, err := unix.IoctlRetInt(int(f.Fd()), kvmCreateVM)
	if err != nil {
		return false, fmt.Sprintf("/dev/kvm exists but cannot create a virtual machine (%v)", err)
	}
	unix.Close(vmfd)
	return true, ""
}

// chooseAccel resolves the configured accelerator.
func chooseAccel(want string) (accel, why string, err error) {
	ok, reason := kvmUsable()
	switch want {
	case AccelAuto:
		if ok {
			return AccelKVM, "", nil
		}
		return AccelTCG, reason, nil
	case AccelKVM:
		if !ok {
			return "", "", kiln.FieldErrorf(kiln.EUNAVAILABLE, "accel", "KVM was asked for but is not usable: %s; use accel tcg (slower) or fix KVM on this machine", reason)
		}
		return AccelKVM, "", nil
	case AccelTCG:
		return AccelTCG, "", nil
	}
	return "", "", kiln.FieldErrorf(kiln.EINVALID, "accel", "accelerator %q is not kvm, tcg or empty (automatic)", want)
}

func lookQemu() (system, img string, err error) {
	system, err = exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return "", "", kiln.Errorf(kiln.EUNAVAILABLE, "the VM platform needs qemu-system-x86_64, which is not on PATH; install qemu-system-x86 (apt-get install qemu-system-x86)")
	}
	img, err = exec.LookPath("qemu-img")
	if err != nil {
		return "", "", kiln.Errorf(kiln.EUNAVAILABLE, "the VM platform needs qemu-img, which is not on PATH; install qemu-utils (apt-get install qemu-utils)")
	}
	return system, img, nil
}

// qemuArgs is the command line of an instance's QEMU. It runs in the
// instance directory: the sockets are named relative to it (a Unix socket
// path has at most 107 bytes).
func qemuArgs(dir string, rec *record, firmware string, memMiB, cpus int, relay []string) ([]string, error) {
	egressNet, egressCfg, err := egressArgs(rec.Egress, relay)
	if err != nil {
		return nil, err
	}
	var fwd strings.Builder
	for _, pf := range rec.Ports {
		fmt.Fprintf(&fwd, ",hostfwd=tcp:%s-:%d", pf.Host, pf.Guest)
	}
	accel := "tcg"
	if rec.Accel == AccelKVM {
		accel = "kvm"
	}
	accelArg := accel
	if accel == "tcg" && cpus > 1 {
		// One host thread per virtual CPU (QEMU's default for an x86 guest
		// on an x86 host; said, so that a QEMU that would fall back to one
		// thread for all fails instead).
		accelArg = "tcg,thread=multi"
	}
	args := []string{
		"-name", "kiln-" + rec.ID + ",debug-threads=off",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", "q35", "-accel", accelArg,
		"-m", fmt.Sprint(memMiB), "-smp", fmt.Sprint(cpus),
		"-drive", "file=" + filepath.Join(dir, diskFile) + ",if=virtio,format=qcow2,discard=unmap",
		// restrict=on: no route out of the guest, as local instances have
		// none; the forwards below still reach it.
		"-netdev", "user,id=net0,restrict=on" + fwd.String() + egressNet,
		"-device", "virtio-net-pci,netdev=net0",
		"-device", "virtio-rng-pci",
		"-chardev", "file,id=console,path=" + consoleFile,
		"-serial", "chardev:console",
		"-device", "virtio-serial-pci,id=vser0",
		"-chardev", "socket,id=agent,path=" + agentSocket,
		"-device", "virtserialport,bus=vser0.0,chardev=agent,name=" + disk.AgentPort,
		"-qmp", "unix:" + qmpSocket + ",server=on,wait=off",
	}
	if accel == "kvm" {
		args = append(args, "-cpu", "host")
	}
	if b := rec.Direct; b != nil {
		// QEMU's BIOS and Linux loader, the image's kernel and initramfs.
		args = append(args, "-kernel", b.Kernel, "-initrd", b.Initrd, "-append", b.Cmdline)
	} else {
		args = append(args, "-bios", firmware)
	}
	args = append(args, egressCfg...)
	// The launch configuration: files QEMU reads once at start, so only
	// their paths are on the command line, never their content.
	for _, name := range rec.Credentials {
		args = append(args, "-fw_cfg", "name="+fwCfgCredentials+name+",file="+filepath.Join(instancedir.CredentialsDir, name))
	}
	return args, nil
}

// fwCfgCredentials is the fw_cfg directory systemd (since 252) imports
// system credentials from at boot, into /run/credentials/@system.
// maxCredentialName is what is left of fw_cfg's 55-character file names.
const (
	fwCfgCredentials  = "opt/io.systemd.credentials/"
	maxCredentialName = 55 - len(fwCfgCredentials)
)
