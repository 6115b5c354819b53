package vm

import (
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
)

// File names inside an instance directory.
const (
	recordFile     = instancedir.RecordFile
	lockFile       = instancedir.LockFile
	consoleFile    = "console.log"
	supervisorFile = instancedir.SupervisorLog
	diskFile       = "disk.qcow2" // the instance's overlay on the image's disk
	agentSocket    = "agent.sock" // QEMU's end of the virtio-serial port connects here
	execSocket     = "exec.sock"  // kiln processes open commands here
	qmpSocket      = "qmp.sock"
)

// record is an instance's state.json. Launch writes the first one; after
// that only the holder of supervisor.lock writes it.
type record struct {
	ID      string             `json:"id"`
	Name    string             `json:"name"`
	Version string             `json:"version,omitempty"`
	Digest  string             `json:"digest"`
	Base    string             `json:"base"` // the image's disk in the cache (the overlay's backing file)
	State   kiln.InstanceState `json:"state"`
	// Ports are the forwards asked for until the supervisor has chosen host
	// ports, then the addresses QEMU listens on.
	Ports []kiln.PortForward `json:"ports,omitempty"`

	SupervisorPID int    `json:"supervisor_pid,omitempty"`
	QemuPID       int    `json:"qemu_pid,omitempty"`
	QemuStart     uint64 `json:"qemu_start,omitempty"` // clock ticks after boot, against PID reuse
	Accel         string `json:"accel,omitempty"`
	// Direct is the image's kernel, initramfs and command line when QEMU
	// boots them directly (BootDirect); nil boots through the firmware.
	Direct *directBoot `json:"direct_boot,omitempty"`

	// Credentials names the launch configuration's credentials, given to
	// QEMU as fw_cfg files from the credentials directory (removed once
	// QEMU has read them); CredentialHashes are their content hashes
	// ("sha256:…" by name) for drift detection.
	Credentials      []string          `json:"credentials,omitempty"`
	CredentialHashes map[string]string `json:"credential_hashes,omitempty"`
	ConfigDigest     string            `json:"config_digest,omitempty"`
	// Egress are the host loopback addresses the guest reaches at the same
	// address (LaunchConfig.Egress; egress.go).
	Egress []string `json:"egress,omitempty"`

	LaunchedAt time.Time `json:"launched_at"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
	Reason     string    `json:"reason,omitempty"`
}

func (r *record) terminal() bool {
	return r.State == kiln.InstanceStopped || r.State == kiln.InstanceCrashed || r.State == kiln.InstanceDestroyed
}

func readRecord(dir string) (*record, error) {
	var r record
	if err := instancedir.ReadRecord(dir, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func writeRecord(dir string, r *record) error { return instancedir.WriteRecord(dir, r) }

// supervisorOf is the supervisor's PID, recorded or from the pid file.
func supervisorOf(dir string, rec *record) int {
	pid := 0
	if rec != nil {
		pid = rec.SupervisorPID
	}
	return instancedir.SupervisorOf(dir, pid)
}

// lastLines returns the last n lines of a file, without terminal escapes
// the firmware and boot loader write.
func lastLines(path string, n int) string {
	s := instancedir.Tail(path, 16384)
	s = strings.ReplaceAll(s, "\r", "")
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		l = stripEscapes(l)
		if strings.TrimSpace(l) != "" {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	if len(keep) == 0 {
		return "(the serial console is empty: the firmware had not started the boot loader yet)"
	}
	return strings.Join(keep, "\n")
}

func stripEscapes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b {
			// CSI: ESC [ params final-byte
			if i+1 < len(s) && s[i+1] == '[' {
				j := i + 2
				for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
					j++
				}
				i = j
				continue
			}
			i++
			continue
		}
		if s[i] < 0x20 && s[i] != '\t' {
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
