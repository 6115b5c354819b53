package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
)

// Measure takes a group of figures.
type Measure struct {
	// ID selects the measure (`kiln bench all --only build,checkin`).
	ID    string
	Title string
	// Quick measures run in --quick mode, with Env.Quick set so they take
	// their smaller sizes; the others are left out of it.
	Quick bool
	// Needs says what the measure needs that may be missing ("root,
	// mmdebstrap and systemd-nspawn"); Check says whether it is there.
	Needs string
	Check func(*Env) error
	Run   func(ctx context.Context, env *Env) ([]Figure, error)
}

// Env is what every measure gets.
type Env struct {
	// Dir is a scratch directory, removed after the run; each measure
	// makes its own directory beneath it.
	Dir string
	// Quick asks for the smaller sizes (the whole run under 5 minutes).
	Quick bool
	// Postgres is a PostgreSQL URL for the figures taken on both
	// backends; empty leaves PostgreSQL out (said in the report).
	Postgres string
	// Mirror is the Debian mirror for the build figures (empty: default).
	Mirror string
	// Drivers opens the stores and platform the measures run on (the
	// wiring fills it in: benchdrivers.Real()).
	Drivers  Drivers
	Progress io.Writer
	Logger   *slog.Logger
}

// Progressf writes one progress line.
func (e *Env) Progressf(format string, args ...any) {
	if e.Progress != nil {
		fmt.Fprintf(e.Progress, "bench: "+format+"\n", args...)
	}
}

// Skip records a measure left out, and why.
type Skip struct {
	Measure string `json:"measure"`
	Reason  string `json:"reason"`
}

// Failure records a measure that failed; its figures are missing.
type Failure struct {
	Measure string `json:"measure"`
	Error   string `json:"error"`
}

// Report is one run of `kiln bench all`.
type Report struct {
	Machine  Machine   `json:"machine"`
	Started  time.Time `json:"started"`
	Elapsed  float64   `json:"elapsed_s"`
	Quick    bool      `json:"quick"`
	Figures  []Figure  `json:"figures"`
	Skipped  []Skip    `json:"skipped,omitempty"`
	Failures []Failure `json:"failures,omitempty"`
}

// Select returns the measures named in only (all when only is empty), in
// the order given by all; an unknown name is an error listing the known ones.
func Select(all []Measure, only []string) ([]Measure, error) {
	if len(only) == 0 {
		return all, nil
	}
	var ids []string
	for _, m := range all {
		ids = append(ids, m.ID)
	}
	for _, o := range only {
		if !slices.Contains(ids, o) {
			return nil, fmt.Errorf("--only: no measure %q; choose from %s", o, strings.Join(ids, ", "))
		}
	}
	var out []Measure
	for _, m := range all {
		if slices.Contains(only, m.ID) {
			out = append(out, m)
		}
	}
	return out, nil
}

// Run takes every measure in turn. A measure whose Check fails is skipped
// with the reason; one that fails is recorded and the run goes on; a
// cancelled context stops the run and returns what was taken.
func Run(ctx context.Context, env *Env, measures []Measure) (*Report, error) {
	r := &Report{Machine: ThisMachine(), Started: time.Now().UTC(), Quick: env.Quick}
	for _, m := range measures {
		if env.Quick && !m.Quick {
			r.Skipped = append(r.Skipped, Skip{Measure: m.ID, Reason: "not in --quick"})
			continue
		}
		if m.Check != nil {
			if err := m.Check(env); err != nil {
				r.Skipped = append(r.Skipped, Skip{Measure: m.ID, Reason: err.Error()})
				env.Progressf("%s: skipped: %v", m.ID, err)
				continue
			}
		}
		if err := ctx.Err(); err != nil {
			r.Elapsed = time.Since(r.Started).Seconds()
			r.Machine.LoadAfter = LoadAverage()
			return r, err
		}
		env.Progressf("%s: %s (load %.2f)", m.ID, m.Title, LoadAverage()[0])
		dir, err := os.MkdirTemp(env.Dir, m.ID+"-")
		if err != nil {
			return r, err
		}
		menv := *env
		menv.Dir = dir
		t0 := time.Now()
		figs, err := m.Run(ctx, &menv)
		_ = os.RemoveAll(dir)
		r.Figures = append(r.Figures, figs...)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				r.Failures = append(r.Failures, Failure{Measure: m.ID, Error: "stopped: " + err.Error()})
				break
			}
			r.Failures = append(r.Failures, Failure{Measure: m.ID, Error: err.Error()})
			env.Progressf("%s: failed after %s: %v", m.ID, time.Since(t0).Round(time.Millisecond), err)
			continue
		}
		env.Progressf("%s: %d figures in %s", m.ID, len(figs), time.Since(t0).Round(time.Millisecond))
	}
	r.Elapsed = time.Since(r.Started).Seconds()
	r.Machine.LoadAfter = LoadAverage()
	return r, ctx.Err()
}
