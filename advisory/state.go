package advisory

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kiln-project/kiln"
)

// State says how an affected finding stands in Debian's own triage. Only
// the Debian security tracker gives more than StateAffected.
type State string

const (
	// StateAffected: affected, and Debian would ship a DSA/DLA for it (or
	// the source does not say otherwise).
	StateAffected State = "affected"
	// StateFixedLater: affected with no fix in this release yet; a later
	// release has one.
	StateFixedLater State = "fixed-later"
	// StateNoDSA: Debian decided no DSA/DLA is needed (a minor issue); a
	// fix may come with a point release.
	StateNoDSA State = "no-dsa"
	// StatePostponed: no DSA/DLA now; the fix is postponed to a later
	// update (usually a point release).
	StatePostponed State = "postponed"
	// StateIgnored: Debian will not fix it in this release.
	StateIgnored State = "ignored"
	// StateUnimportant: Debian rates it unimportant (not a security issue
	// in Debian's build, or only in a context Debian does not support).
	StateUnimportant State = "unimportant"
	// StateEndOfLife: the package is out of security support in this
	// release; no fix will come.
	StateEndOfLife State = "end-of-life"
)

// States lists every state, in the order reports show them.
var States = []State{StateAffected, StateFixedLater, StateNoDSA, StatePostponed, StateIgnored, StateUnimportant, StateEndOfLife}

// stateOf is the state of an affected finding decided by entry p.
func stateOf(p kiln.AffectedPackage) State {
	switch {
	case p.Severity == "end-of-life":
		return StateEndOfLife
	case p.Severity == "unimportant":
		return StateUnimportant
	case p.NoDSA == "ignored":
		return StateIgnored
	case p.NoDSA == "postponed":
		return StatePostponed
	case p.NoDSA != "":
		return StateNoDSA
	case p.FixedLater != "" && p.Status == kiln.AffectedOpen:
		return StateFixedLater
	}
	return StateAffected
}

// Include is the set of states that count as exposed; the rest are shown
// as triaged by Debian. The zero value (nil) is DefaultInclude.
type Include map[State]bool

// DefaultInclude counts what Debian itself would ship a DSA/DLA for:
// affected findings, with or without a fix in this release yet, but not
// no-dsa (minor, postponed, ignored), unimportant or end-of-life ones.
var DefaultInclude = Include{StateAffected: true, StateFixedLater: true}

// ParseInclude adds the named states to DefaultInclude. Names are the
// states, "no-dsa" for all three no-dsa decisions (no-dsa, postponed,
// ignored), or "all". field names the flag or attribute for errors.
func ParseInclude(field string, names []string) (Include, error) {
	inc := Include{StateAffected: true, StateFixedLater: true}
	for _, list := range names {
		for n := range strings.SplitSeq(list, ",") {
			switch s := State(strings.TrimSpace(n)); {
			case s == "":
			case s == "all":
				for _, st := range States {
					inc[st] = true
				}
			case s == StateNoDSA:
				inc[StateNoDSA], inc[StatePostponed], inc[StateIgnored] = true, true, true
			case slices.Contains(States, s):
				inc[s] = true
			default:
				var known []string
				for _, st := range States {
					known = append(known, string(st))
				}
				return nil, kiln.FieldErrorf(kiln.EINVALID, field, "unknown finding state %q; use %s or all", n, strings.Join(known, ", "))
			}
		}
	}
	return inc, nil
}

// Counts tells whether f counts as exposed under inc.
func (inc Include) Counts(f Finding) bool {
	if !f.Affected {
		return false
	}
	if inc == nil {
		inc = DefaultInclude
	}
	st := f.State
	if st == "" {
		st = StateAffected
	}
	return inc[st]
}

// String lists the included states, for messages.
func (inc Include) String() string {
	if inc == nil {
		inc = DefaultInclude
	}
	var out []string
	for _, st := range States {
		if inc[st] {
			out = append(out, string(st))
		}
	}
	return strings.Join(out, ",")
}

// Excluded lists, for --include, the states inc leaves out (no-dsa
// standing for no-dsa, postponed and ignored together).
func (inc Include) Excluded() string {
	if inc == nil {
		inc = DefaultInclude
	}
	var out []string
	for _, st := range States {
		switch {
		case inc[st]:
		case st == StatePostponed || st == StateIgnored:
			if !slices.Contains(out, string(StateNoDSA)) {
				out = append(out, string(StateNoDSA))
			}
		default:
			out = append(out, string(st))
		}
	}
	return strings.Join(out, ",")
}

// Counted splits the affected findings of fs into those inc counts and
// the number left out by Debian's triage.
func Counted(fs []Finding, inc Include) (counted []Finding, triaged int) {
	for _, f := range fs {
		switch {
		case inc.Counts(f):
			counted = append(counted, f)
		case f.Affected:
			triaged++
		}
	}
	return counted, triaged
}

// triageNote says, for a finding's reason, what Debian decided.
func triageNote(p kiln.AffectedPackage, st State) string {
	var s string
	switch st {
	case StateFixedLater:
		s = "fixed in " + p.FixedLater + " only"
	case StateNoDSA, StatePostponed, StateIgnored:
		s = "Debian: no DSA (" + string(st)
		if p.Note != "" {
			s += ": " + p.Note
		}
		s += ")"
	case StateUnimportant, StateEndOfLife:
		s = "Debian: " + string(st)
	}
	if p.SeverityNVD && p.Severity != "" {
		if s != "" {
			s += "; "
		}
		s += fmt.Sprintf("severity %s is NVD's, not yet Debian's", p.Severity)
	}
	return s
}
