package kiln

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AgePolicy is an environment's age limit: no instance there may run an
// image version built longer than MaxAge ago.
type AgePolicy struct {
	Environment string    `json:"environment"`
	MaxAge      Age       `json:"max_age_seconds"`
	UpdatedAt   time.Time `json:"updated_at"`
	UpdatedBy   string    `json:"updated_by,omitempty"`
}

// Age is a span of time in whole seconds, as age limits are stored and
// shown in JSON.
type Age int64

// AgeOf rounds d down to whole seconds.
func AgeOf(d time.Duration) Age { return Age(d / time.Second) }

// Duration returns a as a time.Duration.
func (a Age) Duration() time.Duration { return time.Duration(a) * time.Second }

func (a Age) String() string { return FormatAge(a.Duration()) }

// ParseMaxAge parses an age limit: a number with unit d (days), w (weeks)
// or h (hours), or any Go duration ("36h30m"). "90d" is 90 × 24 hours.
func ParseMaxAge(field, s string) (Age, error) {
	bad := func() (Age, error) {
		return 0, FieldErrorf(EINVALID, field, "%q is not an age; write a positive number of days, weeks or hours: 90d, 12w, 36h", s)
	}
	if s == "" {
		return bad()
	}
	unit := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[len(s)-1]]
	var d time.Duration
	if unit != 0 {
		n, err := strconv.ParseFloat(s[:len(s)-1], 64)
		if err != nil || n <= 0 || n > 100*365 {
			return bad()
		}
		d = time.Duration(n * float64(unit))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d <= 0 {
			return bad()
		}
	}
	if d < time.Minute {
		return 0, FieldErrorf(EINVALID, field, "age limit %s is under a minute; did you mean %sd?", s, strings.TrimRight(s, "smh"))
	}
	return AgeOf(d), nil
}

// FormatAge writes a duration in days and hours ("92d4h", "5h"), the way
// age limits are written.
func FormatAge(d time.Duration) string {
	if d < 0 {
		return "-" + FormatAge(-d)
	}
	days := int64(d / (24 * time.Hour))
	hours := int64((d % (24 * time.Hour)) / time.Hour)
	switch {
	case days > 0 && hours > 0:
		return fmt.Sprintf("%dd%dh", days, hours)
	case days > 0:
		return fmt.Sprintf("%dd", days)
	case hours > 0:
		return fmt.Sprintf("%dh", hours)
	}
	return fmt.Sprintf("%dm", int64(d/time.Minute))
}
