package verify

import "time"

// Outcome is what became of one check.
type Outcome string

const (
	Pass Outcome = "pass"
	Fail Outcome = "fail" // the value did not match, or could not be probed (see Error)
	Skip Outcome = "skip" // the resource says `skip: true`; nothing was probed
)

// Result is the outcome of one check: one attribute of one resource.
type Result struct {
	Type     string         `json:"type"`
	ID       string         `json:"id"`
	Property string         `json:"property"`
	Title    string         `json:"title,omitempty"`
	Meta     map[string]any `json:"meta,omitempty"`
	// Source is the file:line that declared the resource.
	Source   string  `json:"source,omitempty"`
	Outcome  Outcome `json:"outcome"`
	Expected string  `json:"expected"`
	// Found is the probed value as text, cut when long; empty when the
	// probe failed or was skipped.
	Found string `json:"found,omitempty"`
	// Detail says more about a mismatch, such as which patterns were missing.
	Detail string `json:"detail,omitempty"`
	// Error says why the value could not be probed or compared.
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// Report is the outcome of probing a Suite, in the suite's order.
type Report struct {
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	Results  []Result      `json:"results"`
	Summary  Summary       `json:"summary"`
}

// Summary counts a report's results.
type Summary struct {
	Count   int `json:"count"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
}

// Passed reports whether the report has checks and none of them failed.
// A report whose every check was skipped has not passed: it tested nothing.
func (r *Report) Passed() bool {
	return r.Summary.Failed == 0 && r.Summary.Count > r.Summary.Skipped
}

// summarize recomputes Summary from Results.
func (r *Report) summarize() {
	r.Summary = Summary{Count: len(r.Results)}
	for _, res := range r.Results {
		switch res.Outcome {
		case Fail:
			r.Summary.Failed++
		case Skip:
			r.Summary.Skipped++
		}
	}
}
