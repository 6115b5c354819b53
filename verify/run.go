package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kiln-project/kiln"
)

// ProbePath is where kiln's own static binary is bind-mounted inside an
// instance; `ProbePath probe` runs RunProbeMain there.
const ProbePath = "/run/kiln/kiln"

// maxSuiteSize and maxReportSize bound what crosses the instance boundary.
const (
	maxSuiteSize  = 64 << 20
	maxReportSize = 256 << 20
	maxStderr     = 64 << 10
)

// Executor runs a command inside the machine under test and returns its
// exit status. An error means the command could not be run at all.
type Executor interface {
	Exec(ctx context.Context, argv []string, stdio kiln.ExecIO) (int, error)
}

// InstanceExecutor runs commands in one instance of a kiln.Platform.
type InstanceExecutor struct {
	Platform kiln.Platform
	ID       string
}

// Exec runs argv in the instance.
func (e InstanceExecutor) Exec(ctx context.Context, argv []string, stdio kiln.ExecIO) (int, error) {
	return e.Platform.Exec(ctx, e.ID, argv, stdio)
}

// Run probes suite inside the machine behind exec: it runs `ProbePath
// probe` with the suite as JSON on stdin and decodes the Report it prints.
// A failing check is not an error (see Report.Passed); a probe that cannot
// run, crashes or prints no report is, with the probe's stderr.
func Run(ctx context.Context, exec Executor, suite *Suite) (*Report, error) {
	in, err := json.Marshal(suite)
	if err != nil {
		return nil, fmt.Errorf("encode the suite: %w", err)
	}
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxReportSize, maxStderr
	code, err := exec.Exec(ctx, []string{ProbePath, "probe"}, kiln.ExecIO{
		Stdin: bytes.NewReader(in), Stdout: &stdout, Stderr: &stderr,
	})
	if err != nil {
		return nil, fmt.Errorf("run the probe %s: %w%s", ProbePath, err, stderrNote(&stderr))
	}
	if stdout.cut {
		return nil, fmt.Errorf("probe report larger than %d bytes", maxReportSize)
	}
	var rep Report
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if derr := dec.Decode(&rep); derr != nil {
		if code != 0 {
			return nil, fmt.Errorf("probe exited with status %d and no report%s", code, stderrNote(&stderr))
		}
		return nil, fmt.Errorf("probe printed a bad report: %w%s", derr, stderrNote(&stderr))
	}
	if len(rep.Results) != suite.Count() {
		return nil, fmt.Errorf("probe returned %d results for %d checks: is %s the same kiln version as this one?", len(rep.Results), suite.Count(), ProbePath)
	}
	rep.summarize()
	return &rep, nil
}

func stderrNote(b *limitedBuffer) string {
	s := strings.TrimSpace(b.String())
	if s == "" {
		return ""
	}
	return "; stderr: " + s
}

// RunProbeMain is the probe's side of Run, for the `kiln probe` command:
// it reads a Suite as JSON from stdin, probes this machine and writes the
// Report as JSON to stdout. It returns an error only when it cannot read
// the suite or write the report; failing checks are in the report.
func RunProbeMain(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	data, err := io.ReadAll(io.LimitReader(stdin, maxSuiteSize+1))
	if err != nil {
		return fmt.Errorf("read the suite from stdin: %w", err)
	}
	if len(data) > maxSuiteSize {
		return fmt.Errorf("suite larger than %d bytes", maxSuiteSize)
	}
	var suite Suite
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&suite); err != nil {
		return fmt.Errorf("decode the suite from stdin: %w", err)
	}
	for i, r := range suite.Resources {
		for j, c := range r.Checks {
			if c.Expect == nil {
				return fmt.Errorf("suite: resource %d check %d has no expectation", i, j)
			}
		}
	}
	rep := Probe(ctx, &suite)
	if err := json.NewEncoder(stdout).Encode(rep); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	return nil
}
