package kiln

// Status is a version's release status. It moves along the pipeline and is
// mirrored in the Release_Status tag.
type Status string

const (
	// Candidate: built, not yet tested, not for use.
	StatusCandidate Status = "candidate"
	// Tested: passed the test stage on a temporary instance of the final image.
	StatusTested Status = "tested"
	// Ready: passed every stage; consumers may use it.
	StatusReady Status = "ready"
	// Failed: a stage failed; never to be used.
	StatusFailed Status = "failed"
	// StatusDeprecated marks a version still allowed but to be replaced.
	StatusDeprecated Status = "deprecated"
	// Revoked: must not be used; running instances should be replaced.
	StatusRevoked Status = "revoked"
)

// Statuses lists every status in pipeline order.
var Statuses = []Status{StatusCandidate, StatusTested, StatusReady, StatusFailed, StatusDeprecated, StatusRevoked}

var transitions = map[Status][]Status{
	StatusCandidate:  {StatusTested, StatusFailed},
	StatusTested:     {StatusReady, StatusFailed},
	StatusReady:      {StatusDeprecated, StatusRevoked},
	StatusDeprecated: {StatusRevoked},
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	for _, x := range Statuses {
		if x == s {
			return true
		}
	}
	return false
}

// Next lists the statuses s may move to.
func (s Status) Next() []Status { return transitions[s] }

// CanMoveTo reports whether the lifecycle allows s → to.
func (s Status) CanMoveTo(to Status) bool {
	for _, x := range transitions[s] {
		if x == to {
			return true
		}
	}
	return false
}

// Rank orders the statuses on the pipeline's main line: candidate 1,
// tested 2, ready 3. Off-line statuses (failed, deprecated, revoked) rank 0,
// so "at least tested" never matches them.
func (s Status) Rank() int {
	switch s {
	case StatusCandidate:
		return 1
	case StatusTested:
		return 2
	case StatusReady:
		return 3
	}
	return 0
}

// ParseStatus parses a status name, with a message listing the valid ones.
func ParseStatus(field, s string) (Status, error) {
	st := Status(s)
	if !st.Valid() {
		return "", FieldErrorf(EINVALID, field, "unknown status %q; use one of candidate, tested, ready, failed, deprecated, revoked", s)
	}
	return st, nil
}
