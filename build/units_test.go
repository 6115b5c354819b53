package build

import (
	"strings"
	"testing"
)

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 10 << 20: "10 MiB", 10 << 30: "10 GiB", -2048: "-2.0 KiB",
	} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q; want %q", n, got, want)
		}
	}
}

func TestParseBytesMore(t *testing.T) {
	for in, want := range map[string]int64{"1,048,576": 1 << 20, "2 g": 2 << 30, "1k": 1 << 10, "1 kB": 1000, " 3 TiB ": 3 << 40} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"10 parsecs": `unknown unit "parsecs"`,
		"1.5.3":      "want a number",
		"-5":         "want a number",
		"8 EiB":      "too large",
	} {
		if _, err := ParseBytes(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseBytes(%q) = %v; want an error saying %q", in, err, want)
		}
	}
}
