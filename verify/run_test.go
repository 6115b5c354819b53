package verify

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

// probeEnv makes the test binary act as `kiln probe` (see TestMain), so
// that Run is tested against a real probe process.
const probeEnv = "KILN_VERIFY_TEST_PROBE"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == ReadOnlyCommand { // readonly_test.go
		code, err := RunReadOnlyMain(context.Background(), os.Args[2:], os.Stdin, os.Stdout, os.Stderr)
		if err != nil {
			os.Stderr.WriteString("read-only exec: " + err.Error() + "\n")
		}
		os.Exit(code)
	}
	if os.Getenv(probeEnv) == "1" {
		if err := RunProbeMain(context.Background(), os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString("probe: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// hostExecutor runs argv on this host, replacing the probe path with
// replace (a command line) when set, or with this test binary as the probe.
type hostExecutor struct{ replace []string }

func (e hostExecutor) Exec(ctx context.Context, argv []string, stdio kiln.ExecIO) (int, error) {
	if len(argv) != 2 || argv[0] != ProbePath || argv[1] != "probe" {
		return 0, errors.New("unexpected argv " + strings.Join(argv, " "))
	}
	var cmd *exec.Cmd
	if e.replace != nil {
		cmd = exec.CommandContext(ctx, e.replace[0], e.replace[1:]...)
	} else {
		exe, err := os.Executable()
		if err != nil {
			return 0, err
		}
		cmd = exec.CommandContext(ctx, exe)
		cmd.Env = append(os.Environ(), probeEnv+"=1")
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.Stdin, stdio.Stdout, stdio.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, err
}

func TestRun(t *testing.T) {
	suite, err := Parse("t.yaml", []byte(`
user:
  root: {exists: true, uid: 0}
command:
  fails: {exec: "exit 2", exit-status: 0}
file:
  /etc/passwd: {exists: true, contents: ["root:"], skip: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), hostExecutor{}, suite)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := Summary{Count: 5, Failed: 1, Skipped: 2}
	if rep.Summary != want {
		t.Errorf("summary = %+v, want %+v", rep.Summary, want)
	}
	if r := rep.Results[2]; r.ID != "fails" || r.Expected != "0" || r.Found != "2" || r.Outcome != Fail {
		t.Errorf("command result = %+v", r)
	}
}

func TestRunBrokenProbe(t *testing.T) {
	suite, err := Parse("t.yaml", []byte("user:\n  root: {exists: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		replace []string
		want    []string
	}{
		{"crash", []string{"/bin/sh", "-c", "echo 'probe: cannot read' >&2; exit 3"}, []string{"status 3", "no report", "probe: cannot read"}},
		{"bad json", []string{"/bin/sh", "-c", "echo not json; echo warning >&2"}, []string{"bad report", "warning"}},
		{"wrong count", []string{"/bin/sh", "-c", `echo '{"results":[],"summary":{"count":0,"failed":0,"skipped":0},"started":"2026-01-01T00:00:00Z","duration_ns":0}'`}, []string{"0 results for 1 checks"}},
		{"cannot start", []string{"/nonexistent/kiln"}, []string{"run the probe"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), hostExecutor{replace: tt.replace}, suite)
			if err == nil {
				t.Fatal("Run succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRunProbeMainBadInput(t *testing.T) {
	var out strings.Builder
	err := RunProbeMain(context.Background(), strings.NewReader(`{"resources": [{"type": "file", "checks": [{"property": "exists"}]}]}`), &out)
	if err == nil || !strings.Contains(err.Error(), "no expectation") {
		t.Errorf("err = %v, want a missing-expectation error", err)
	}
	err = RunProbeMain(context.Background(), strings.NewReader(`{"surprise": 1}`), &out)
	if err == nil || !strings.Contains(err.Error(), "decode the suite") {
		t.Errorf("err = %v, want a decode error", err)
	}
	if out.Len() != 0 {
		t.Errorf("wrote %q on bad input", out.String())
	}
}
