package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// systemctlTimeout bounds one systemctl call.
const systemctlTimeout = 10 * time.Second

// serviceValues asks systemd. enabled is `systemctl is-enabled` exiting 0
// (enabled, static, alias, indirect, generated…), which works even without a
// running systemd; running is `systemctl is-active` printing "active",
// which needs one and fails with systemctl's message otherwise.
func (s *system) serviceValues(ctx context.Context, r *Resource) valuer {
	return func(prop string) (any, error) {
		switch prop {
		case "enabled":
			_, _, code, err := s.runSystemctl(ctx, "is-enabled", r.Target)
			if err != nil {
				return nil, err
			}
			return code == 0, nil
		case "running":
			out, stderr, _, err := s.runSystemctl(ctx, "is-active", r.Target)
			if err != nil {
				return nil, err
			}
			state := strings.TrimSpace(out)
			if state == "" {
				return nil, fmt.Errorf("systemctl is-active %s: %s", r.Target, firstLine(stderr))
			}
			return state == "active", nil
		case "runlevels":
			// As goss on systemd: units have no SysV runlevels.
			return []string{}, nil
		}
		return nil, fmt.Errorf("unknown property %q", prop)
	}
}

func (s *system) runSystemctl(ctx context.Context, verb, unit string) (stdout, stderr string, code int, err error) {
	ctx, cancel := context.WithTimeout(ctx, systemctlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.systemctl, verb, "--", unit)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return o.String(), e.String(), exit.ExitCode(), nil
	}
	if err != nil {
		return "", "", 0, fmt.Errorf("systemctl %s %s: %w", verb, unit, err)
	}
	return o.String(), e.String(), 0, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return "no output"
	}
	return s
}
