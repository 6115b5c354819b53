package verify

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// commLen is the kernel's limit on /proc/PID/comm (TASK_COMM_LEN - 1).
const commLen = 15

// processValues looks for a process whose executable name (comm) is the
// target, as goss does: "nginx", not "nginx: master process".
func (s *system) processValues(r *Resource) valuer {
	return func(prop string) (any, error) {
		if prop != "running" {
			return nil, fmt.Errorf("unknown property %q", prop)
		}
		want := r.Target
		if len(want) > commLen {
			want = want[:commLen]
		}
		comms, err := filepath.Glob(filepath.Join(s.proc, "[0-9]*", "comm"))
		if err != nil {
			return nil, err
		}
		for _, c := range comms {
			b, err := os.ReadFile(c)
			if err != nil {
				continue // the process exited meanwhile
			}
			if strings.TrimSuffix(string(b), "\n") == want {
				return true, nil
			}
		}
		return false, nil
	}
}

// kernelParamValues reads a sysctl from /proc/sys.
func (s *system) kernelParamValues(r *Resource) valuer {
	return func(prop string) (any, error) {
		if prop != "value" {
			return nil, fmt.Errorf("unknown property %q", prop)
		}
		if strings.Contains(r.Target, "..") || strings.Contains(r.Target, "/") {
			return nil, fmt.Errorf("bad kernel parameter name %q", r.Target)
		}
		b, err := os.ReadFile(filepath.Join(s.proc, "sys", strings.ReplaceAll(r.Target, ".", "/")))
		if err != nil {
			return nil, fmt.Errorf("kernel parameter %s: %w", r.Target, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
}
