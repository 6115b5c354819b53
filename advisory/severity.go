package advisory

import "strings"

// SeverityRank orders a source's severity words: 0 for unimportant,
// negligible, not-yet-assigned and end-of-life, 1 low, 2 medium (and any
// word not known, including none), 3 high or important, 4 critical.
func SeverityRank(s string) int {
	switch strings.ToLower(s) {
	case "unimportant", "negligible", "not yet assigned", "end-of-life":
		return 0
	case "low":
		return 1
	case "high", "important":
		return 3
	case "critical":
		return 4
	}
	return 2
}
