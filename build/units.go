package build

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/dustin/go-humanize"
)

// FormatBytes writes n in binary units with two significant digits or
// more: "512 B", "1.5 GiB", "15 GiB".
func FormatBytes(n int64) string {
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n))
	}
	return humanize.IBytes(uint64(n))
}

// ParseBytes reads a size such as "10GiB", "500MB", "2G", "1.5 KiB" or
// "1,048,576": KiB, MiB, GiB… and a bare K, M, G… are powers of 1024; kB,
// MB, GB… powers of 1000.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return !unicode.IsDigit(r) && r != '.' && r != ',' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	// humanize reads a bare letter as a power of 1000; kiln always read
	// it as one of 1024, as dd, ls -h and most tools do.
	if len(unit) == 1 && strings.ContainsAny(strings.ToLower(unit), "kmgtpe") {
		t += "i"
	}
	n, err := humanize.ParseBytes(t)
	switch {
	case err == nil && n <= math.MaxInt64:
		return int64(n), nil
	case !isNumber(num):
		return 0, fmt.Errorf("size %q: want a number with an optional unit (10GiB, 500MB)", s)
	case err != nil && !isUnit(unit):
		return 0, fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)", s, unit)
	default:
		return 0, fmt.Errorf("size %q: too large", s)
	}
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64)
	return err == nil
}

func isUnit(s string) bool {
	_, err := humanize.ParseBytes("1" + s)
	return err == nil
}

// ParseAge reads a duration such as "30d", "12h" or "1d12h" ("d" is 24 h).
func ParseAge(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	var total time.Duration
	if d, rest, ok := strings.Cut(t, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(d, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != d {
			return 0, fmt.Errorf("age %q: want days and/or a Go duration (30d, 12h, 1d12h)", s)
		}
		total, t = time.Duration(n)*24*time.Hour, rest
	}
	if t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("age %q: want days and/or a Go duration (30d, 12h, 1d12h)", s)
		}
		total += d
	}
	return total, nil
}

func days(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}
