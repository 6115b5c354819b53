package bench

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Figure is one measured number.
type Figure struct {
	// ID names the figure for machines ("build.fresh", "checkin.sqlite").
	ID string `json:"id"`
	// Title says what was measured, for people.
	Title string  `json:"title"`
	Value float64 `json:"value"`
	// Unit is "s", "ms", "/s", "MiB", "B" or empty for a count.
	Unit string `json:"unit"`
	// Reference is the run the figure is compared with, taken in the same
	// process (raw mmdebstrap for a bake, skopeo for a push); Ratio is
	// Value / Reference.Value.
	Reference *Reference `json:"reference,omitempty"`
	Ratio     float64    `json:"ratio,omitempty"`
	// Target is the goal; Met is set when there is one.
	Target *Target `json:"target,omitempty"`
	Met    *bool   `json:"met,omitempty"`
	// Note says what bounds the figure or how it was taken.
	Note string `json:"note,omitempty"`
}

// Reference is the figure's comparison run.
type Reference struct {
	Title string  `json:"title"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Target is a goal on the figure's value, or on its ratio when OnRatio.
type Target struct {
	// Max is true for "at most" (times, sizes), false for "at least" (rates).
	Max     bool    `json:"max"`
	Value   float64 `json:"value"`
	OnRatio bool    `json:"on_ratio,omitempty"`
	Unit    string  `json:"unit,omitempty"`
}

// String writes the target as "≤ 0.7× raw" or "≥ 20,000 /s".
func (t *Target) String() string {
	op := "≥"
	if t.Max {
		op = "≤"
	}
	if t.OnRatio {
		return op + " " + strconv.FormatFloat(t.Value, 'f', -1, 64) + "×"
	}
	v := strconv.FormatFloat(t.Value, 'f', -1, 64)
	if math.Abs(t.Value) >= 10000 {
		v = groupThousands(int64(math.Round(t.Value)))
	}
	switch t.Unit {
	case "":
		return op + " " + v
	case "/s":
		return op + " " + v + "/s"
	default:
		return op + " " + v + " " + t.Unit
	}
}

// Seconds makes a figure of a duration, in seconds.
func Seconds(id, title string, d time.Duration) Figure {
	return Figure{ID: id, Title: title, Value: d.Seconds(), Unit: "s"}
}

// Millis makes a figure of a duration, in milliseconds.
func Millis(id, title string, d time.Duration) Figure {
	return Figure{ID: id, Title: title, Value: float64(d.Microseconds()) / 1000, Unit: "ms"}
}

// Against sets the figure's reference and ratio.
func (f Figure) Against(title string, ref float64, unit string) Figure {
	f.Reference = &Reference{Title: title, Value: ref, Unit: unit}
	if ref != 0 {
		f.Ratio = f.Value / ref
	}
	return f
}

// AtMost sets an upper target on the value (in the figure's unit).
func (f Figure) AtMost(v float64) Figure { return f.target(&Target{Max: true, Value: v, Unit: f.Unit}) }

// AtLeast sets a lower target on the value.
func (f Figure) AtLeast(v float64) Figure { return f.target(&Target{Value: v, Unit: f.Unit}) }

// RatioAtMost sets an upper target on the ratio to the reference.
func (f Figure) RatioAtMost(v float64) Figure {
	return f.target(&Target{Max: true, Value: v, OnRatio: true})
}

// Noted sets the figure's note.
func (f Figure) Noted(format string, args ...any) Figure {
	f.Note = fmt.Sprintf(format, args...)
	return f
}

func (f Figure) target(t *Target) Figure {
	f.Target = t
	got := f.Value
	if t.OnRatio {
		if f.Reference == nil || f.Reference.Value == 0 {
			f.Met = nil
			return f
		}
		got = f.Ratio
	}
	met := got >= t.Value
	if t.Max {
		met = got <= t.Value
	}
	f.Met = &met
	return f
}

// formatValue writes v with its unit, with digits that suit its size.
func formatValue(v float64, unit string) string {
	var s string
	switch a := math.Abs(v); {
	case a >= 10000:
		s = groupThousands(int64(math.Round(v)))
	case a >= 100:
		s = strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		s = strconv.FormatFloat(v, 'f', 1, 64)
	default:
		s = strconv.FormatFloat(v, 'f', 2, 64)
	}
	switch unit {
	case "":
		return s
	case "/s":
		return s + "/s"
	default:
		return s + " " + unit
	}
}

func groupThousands(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	s := strconv.FormatInt(n, 10)
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
