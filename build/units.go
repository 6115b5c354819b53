package build

import (
	"fmt"
	"strings"
	"time"
)

// FormatBytes writes n in binary units: "1.5 GiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ParseBytes reads a size such as "10GiB", "500MB", "2G" or "1048576"
// (K/M/G/T are powers of 1024 with or without "iB"; "kB", "MB"… powers
// of 1000).
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, suffix := t[:i], strings.TrimSpace(t[i:])
	var f float64
	if _, err := fmt.Sscanf(num, "%g", &f); err != nil || num == "" {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (10GiB, 500MB)", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	}[strings.ToLower(suffix)]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)", s, suffix)
	}
	return int64(f * mult), nil
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
