package local

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kiln-project/kiln/internal/instancedir"
)

// ProbePath is where the kiln binary is mounted, read-only, inside every
// instance, so that the test stage can run it there as the server-test probe.
const ProbePath = "/run/kiln/kiln"

// nspawnArgs is the systemd-nspawn command line that boots an instance.
//
// --register=no --keep-unit: the host's PID 1 is not systemd here, so there
// is no machined to register with nor a scope to create. --resolv-conf=off,
// --timezone=off and --link-journal=no keep nspawn from copying host files
// into the instance (they would show up as drift in the upper dir).
// --load-credential hands the launch configuration to the instance's
// systemd, which keeps it in /run/credentials/@system (read-only, in
// memory) and gives it to units that ask with LoadCredential=NAME.
// --network-veth and --port do not work here; the network namespace is
// kiln's own.
func nspawnArgs(r *record, merged string) []string {
	args := []string{
		"--boot",
		"--register=no",
		"--keep-unit",
		"--console=passive",
		"--resolv-conf=off",
		"--timezone=off",
		"--link-journal=no",
		"--network-namespace-path=" + filepath.Join(netnsDir, r.Netns),
		"--directory=" + merged,
		"--machine=" + r.Machine,
		"--hostname=" + r.Hostname,
	}
	if r.Probe != "" {
		args = append(args, "--bind-ro="+r.Probe+":"+ProbePath)
	}
	// By path, never by value: a value on the command line shows in ps.
	for _, name := range r.Credentials {
		args = append(args, "--load-credential="+name+":"+filepath.Join(filepath.Dir(merged), credentialsDir, name))
	}
	return args
}

// findLeader waits for the instance's init: the child of the nspawn process
// that lives in another PID namespace and has exec'd its init (before that,
// its root is not yet the instance's and entering it would see the host).
func findLeader(nspawnPID int, exited <-chan struct{}, timeout time.Duration) (int, uint64, error) {
	hostPidns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return 0, 0, err
	}
	deadline := time.Now().Add(timeout)
	for {
		kids, err := childrenOf(nspawnPID)
		if err != nil {
			return 0, 0, err
		}
		for _, pid := range kids {
			ns, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
			if err != nil || ns == hostPidns {
				continue
			}
			st, err := instancedir.ReadProcStat(pid)
			if err != nil {
				continue
			}
			if st.Comm == "systemd" || st.Comm == "init" {
				return pid, st.Start, nil
			}
		}
		select {
		case <-exited:
			return 0, 0, fmt.Errorf("systemd-nspawn exited before the instance's init started")
		default:
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("the instance's init did not start within %s", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
