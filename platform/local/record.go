package local

import (
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
	upperDir       = "upper"
	workDir        = "work"
	mergedDir      = "rootfs"
	// lowerView is where LowerDir mounts a layered image read-only.
	lowerView = "lower"
	// credentialsDir holds the instance's launch configuration (0700, each
	// file 0600) from Launch until systemd-nspawn has read it.
	credentialsDir = instancedir.CredentialsDir
)

// record is an instance's state.json. Launch writes the first one; after
// that only the holder of supervisor.lock writes it: the supervisor while it
// lives, then Stop, Destroy or Reconcile once they hold the lock themselves.
type record struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Version  string `json:"version,omitempty"`
	Digest   string `json:"digest"`
	Machine  string `json:"machine"`  // systemd-nspawn -M, unique on the host
	Hostname string `json:"hostname"` // the instance's hostname
	Netns    string `json:"netns"`    // name under /run/netns
	Lower    string `json:"lower"`    // the cached rootfs of a single-tar artifact
	// Lowers are a layered artifact's unpacked layers, top first (the
	// layer cache); empty for a single-tar artifact.
	Lowers []string `json:"lowers,omitempty"`
	Probe  string   `json:"probe,omitempty"`
	// Credentials names the launch configuration's credentials, given to
	// systemd-nspawn with --load-credential from credentialsDir.
	Credentials []string `json:"credentials,omitempty"`
	// CredentialHashes are the credentials' content hashes ("sha256:…" by
	// name), kept for drift detection after the host copy is removed.
	CredentialHashes map[string]string `json:"credential_hashes,omitempty"`
	ConfigDigest     string            `json:"config_digest,omitempty"`
	// Egress are the host loopback addresses the supervisor relays to from
	// the same address inside the instance (LaunchConfig.Egress).
	Egress []string `json:"egress,omitempty"`

	State kiln.InstanceState `json:"state"`
	// Ports are the forwards asked for until the supervisor has bound them,
	// then the addresses actually bound (a host port 0 becomes a real one).
	Ports []kiln.PortForward `json:"ports,omitempty"`

	SupervisorPID int    `json:"supervisor_pid,omitempty"`
	NspawnPID     int    `json:"nspawn_pid,omitempty"`
	NspawnStart   uint64 `json:"nspawn_start,omitempty"` // clock ticks after boot, against PID reuse
	LeaderPID     int    `json:"leader_pid,omitempty"`   // the instance's init, seen from the host
	LeaderStart   uint64 `json:"leader_start,omitempty"`

	LaunchedAt time.Time `json:"launched_at"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
	// Reason says why an instance is crashed or stopped.
	Reason string `json:"reason,omitempty"`
}

// terminal reports whether the record describes an instance whose processes
// are meant to be gone.
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

// writeRecord replaces state.json atomically.
func writeRecord(dir string, r *record) error { return instancedir.WriteRecord(dir, r) }

// supervisorOf returns the supervisor's PID: from the record once the
// supervisor wrote it, else from the pid file Launch wrote.
func supervisorOf(dir string, rec *record) int {
	pid := 0
	if rec != nil {
		pid = rec.SupervisorPID
	}
	return instancedir.SupervisorOf(dir, pid)
}

// lowerDirs are the overlay lower directories of the instance, top first.
func (r *record) lowerDirs() []string {
	if len(r.Lowers) > 0 {
		return r.Lowers
	}
	return []string{r.Lower}
}
