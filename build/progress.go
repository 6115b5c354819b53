package build

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/kiln-project/kiln"
)

// EventKind says what happened in a build.
type EventKind string

const (
	EventStart     EventKind = "start" // the build of an image begins
	EventStepStart EventKind = "step-start"
	EventStepEnd   EventKind = "step-end"   // Err set when the step failed
	EventUpToDate  EventKind = "up-to-date" // nothing changed; no version made
	EventDone      EventKind = "done"       // Version set; Err set when the build failed
)

// Event is one progress report of a build.
type Event struct {
	Kind  EventKind
	Image string
	// Step is 1-based; Steps is how many the build has.
	Step, Steps int
	// Name describes the step: "bootstrap bookworm", "shell app.kiln.hcl:12".
	Name string
	// Cached is set on step-end when the layer came from the step cache.
	Cached  bool
	Elapsed time.Duration
	Version *kiln.VersionRef
	Err     error
}

// String renders the event as a progress line.
func (e Event) String() string {
	switch e.Kind {
	case EventStart:
		return fmt.Sprintf("==> %s: building (%s)", e.Image, e.Name)
	case EventStepStart:
		return fmt.Sprintf("==> %s [%d/%d] %s", e.Image, e.Step, e.Steps, e.Name)
	case EventStepEnd:
		switch {
		case e.Err != nil:
			return fmt.Sprintf("    %s [%d/%d] failed after %s: %v", e.Image, e.Step, e.Steps, round(e.Elapsed), e.Err)
		case e.Cached:
			return fmt.Sprintf("    %s [%d/%d] cached (%s)", e.Image, e.Step, e.Steps, round(e.Elapsed))
		}
		return fmt.Sprintf("    %s [%d/%d] done in %s", e.Image, e.Step, e.Steps, round(e.Elapsed))
	case EventUpToDate:
		return fmt.Sprintf("==> %s: up to date (%s); use --force to build anyway", e.Image, e.Name)
	case EventDone:
		if e.Err != nil {
			return fmt.Sprintf("==> %s: build failed after %s: %v", e.Image, round(e.Elapsed), e.Err)
		}
		if e.Version == nil { // a rebuild check registers no version
			return fmt.Sprintf("==> %s: rebuilt in %s (%s)", e.Image, round(e.Elapsed), e.Name)
		}
		return fmt.Sprintf("==> %s: built %s in %s (%s)", e.Image, e.Version, round(e.Elapsed), e.Name)
	}
	return string(e.Kind)
}

func round(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// reporter sends events to the caller and keeps the full build log.
type reporter struct {
	image    string
	progress io.Writer
	verbose  bool
	onEvent  func(Event)

	mu  sync.Mutex
	log bytes.Buffer
}

func (r *reporter) event(e Event) {
	e.Image = r.image
	line := e.String() + "\n"
	r.mu.Lock()
	r.log.WriteString(time.Now().UTC().Format("15:04:05.000 ") + line)
	if r.progress != nil {
		_, _ = io.WriteString(r.progress, line)
	}
	r.mu.Unlock()
	if r.onEvent != nil {
		r.onEvent(e)
	}
}

// Write takes a step's output: always into the log, to the progress
// writer only when verbose.
func (r *reporter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log.Write(p)
	if r.verbose && r.progress != nil {
		_, _ = r.progress.Write(p)
	}
	return len(p), nil
}

func (r *reporter) logf(format string, args ...any) {
	_, _ = fmt.Fprintf(r, format+"\n", args...)
}

func (r *reporter) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.log.Bytes())
}
