package kiln

import (
	"slices"
	"testing"
	"time"
	_ "time/tzdata" // the zones the tests name, whatever the machine has
)

func TestUpdateWindowNext(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	weekdays := &UpdateWindow{Days: []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}, Start: "02:00", End: "05:00", Zone: "Europe/Berlin"}
	overnight := &UpdateWindow{Days: []time.Weekday{time.Saturday}, Start: "22:00", End: "04:00", Zone: "Europe/Berlin"}
	for _, tc := range []struct {
		w        *UpdateWindow
		now, out string
	}{
		{weekdays, "2026-12-07 03:00", "2026-12-07 03:00"}, // Monday, inside
		{weekdays, "2026-12-07 05:00", "2026-12-08 02:00"}, // Monday, just closed
		{weekdays, "2026-12-07 01:59", "2026-12-07 02:00"},
		{weekdays, "2026-12-05 12:00", "2026-12-07 02:00"},  // Saturday → Monday
		{overnight, "2026-12-06 03:00", "2026-12-06 03:00"}, // Sunday 03:00 is Saturday's window
		{overnight, "2026-12-06 04:00", "2026-12-12 22:00"},
		// Spring forward: 02:00–03:00 does not exist on 2027-03-28 (Sunday).
		{&UpdateWindow{Start: "02:30", End: "04:00", Zone: "Europe/Berlin"}, "2027-03-28 01:00", "2027-03-28 03:30"},
	} {
		got := tc.w.Next(at(tc.now))
		if !got.Equal(at(tc.out)) {
			t.Errorf("%s at %s: next %s, want %s", tc.w, tc.now, got.In(berlin).Format(time.DateTime), tc.out)
		}
		if open := tc.w.Open(at(tc.now)); open != (tc.now == tc.out) {
			t.Errorf("%s at %s: open %v", tc.w, tc.now, open)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	w, err := ParseUpdateWindow("--window", "mon-wed,fri 02:00-05:00 UTC")
	if err != nil {
		t.Fatal(err)
	}
	if want := []time.Weekday{1, 2, 3, 5}; !slices.Equal(w.Days, want) || w.String() != "mon,tue,wed,fri 02:00-05:00 UTC" {
		t.Errorf("window %v (%s)", w.Days, w)
	}
	if w, err := ParseUpdateWindow("--window", "fri-mon 02:00-05:00 UTC"); err != nil || !slices.Equal(w.Days, []time.Weekday{0, 1, 5, 6}) {
		t.Errorf("wrapping days: %v %v", w, err)
	}
	for _, bad := range []string{"mon 2:00-05:00 UTC", "mon 02:00-05:00 Mars/Olympus", "funday 02:00-05:00 UTC", "mon 02:00 UTC", "02:00-05:00"} {
		if _, err := ParseUpdateWindow("--window", bad); ErrorCode(err) != EINVALID {
			t.Errorf("window %q: %v; want invalid", bad, err)
		}
	}
	l, err := ParseRolloutLimit("--limit", "2/24h")
	if err != nil || l.Count != 2 || l.Per != 24*time.Hour {
		t.Errorf("limit %+v %v", l, err)
	}
	for _, bad := range []string{"0/24h", "2", "2/1s", "x/1h"} {
		if _, err := ParseRolloutLimit("--limit", bad); ErrorCode(err) != EINVALID {
			t.Errorf("limit %q: %v; want invalid", bad, err)
		}
	}
	g := &MetricGate{Prometheus: "ftp://x", Query: "up"}
	if err := g.Validate(); ErrorCode(err) != EINVALID {
		t.Errorf("gate with an ftp URL: %v", err)
	}
}
