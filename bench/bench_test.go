package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTargets(t *testing.T) {
	fresh := Seconds("build.fresh", "fresh", 14*time.Second).Against("raw", 20, "s").RatioAtMost(0.7)
	if fresh.Ratio != 0.7 || fresh.Met == nil || !*fresh.Met {
		t.Errorf("fresh 14 s against raw 20 s: ratio %v met %v, want 0.7 met", fresh.Ratio, fresh.Met)
	}
	slow := Seconds("build.fresh", "fresh", 15*time.Second).Against("raw", 20, "s").RatioAtMost(0.7)
	if slow.Met == nil || *slow.Met {
		t.Errorf("fresh 15 s against raw 20 s should miss ≤ 0.7×")
	}
	rate := Figure{ID: "c", Title: "check-ins", Value: 19_999, Unit: "/s"}.AtLeast(20_000)
	if rate.Met == nil || *rate.Met {
		t.Errorf("19,999/s should miss ≥ 20,000/s")
	}
	noRef := Seconds("x", "x", time.Second).RatioAtMost(1)
	if noRef.Met != nil {
		t.Errorf("a ratio target without a reference cannot be judged, got met %v", *noRef.Met)
	}
	if got := rate.Target.String(); got != "≥ 20,000/s" {
		t.Errorf("target %q", got)
	}
	if got := fresh.Target.String(); got != "≤ 0.7×" {
		t.Errorf("target %q", got)
	}
}

func TestRunSkipsFailsAndGoesOn(t *testing.T) {
	env := &Env{Dir: t.TempDir()}
	ran := map[string]bool{}
	measures := []Measure{
		{ID: "slow", Run: func(context.Context, *Env) ([]Figure, error) { ran["slow"] = true; return nil, nil }},
		{ID: "missing", Quick: true, Check: func(*Env) error { return errors.New("needs root") },
			Run: func(context.Context, *Env) ([]Figure, error) { ran["missing"] = true; return nil, nil }},
		{ID: "broken", Quick: true, Run: func(context.Context, *Env) ([]Figure, error) { return nil, errors.New("mirror unreachable") }},
		{ID: "ok", Quick: true, Run: func(_ context.Context, e *Env) ([]Figure, error) {
			if fi, err := os.Stat(e.Dir); err != nil || !fi.IsDir() || filepath.Dir(e.Dir) != env.Dir {
				t.Errorf("measure dir %s: %v", e.Dir, err)
			}
			return []Figure{Millis("ok.x", "ok", 5*time.Millisecond).AtMost(10)}, nil
		}},
	}
	env.Quick = true
	rep, err := Run(context.Background(), env, measures)
	if err != nil {
		t.Fatal(err)
	}
	if ran["slow"] || ran["missing"] {
		t.Errorf("ran %v; a non-quick measure in --quick and one failing its check must not run", ran)
	}
	if len(rep.Skipped) != 2 || rep.Skipped[1].Reason != "needs root" {
		t.Errorf("skipped %+v", rep.Skipped)
	}
	if len(rep.Failures) != 1 || rep.Failures[0].Measure != "broken" {
		t.Errorf("failures %+v", rep.Failures)
	}
	if len(rep.Figures) != 1 || rep.Figures[0].Value != 5 {
		t.Errorf("figures %+v", rep.Figures)
	}
	var text, js bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Machine:", "ok", "5.00 ms", "≤ 10 ms", "yes", "skipped missing: needs root", "FAILED broken: mirror unreachable"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Figures) != 1 || back.Figures[0].Met == nil || !*back.Figures[0].Met {
		t.Errorf("JSON round trip: %v %+v", err, back)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	second := false
	rep, err := Run(ctx, &Env{Dir: t.TempDir()}, []Measure{
		{ID: "a", Run: func(context.Context, *Env) ([]Figure, error) { cancel(); return nil, context.Canceled }},
		{ID: "b", Run: func(context.Context, *Env) ([]Figure, error) { second = true; return nil, nil }},
	})
	if !errors.Is(err, context.Canceled) || second || len(rep.Failures) != 1 {
		t.Errorf("err %v, second ran %v, failures %+v", err, second, rep.Failures)
	}
}

func TestSelect(t *testing.T) {
	all := []Measure{{ID: "build"}, {ID: "checkin"}, {ID: "sbom"}}
	got, err := Select(all, []string{"sbom", "build"})
	if err != nil || len(got) != 2 || got[0].ID != "build" || got[1].ID != "sbom" {
		t.Errorf("Select = %+v, %v (want the order of all)", got, err)
	}
	if _, err := Select(all, []string{"bild"}); err == nil || !strings.Contains(err.Error(), "choose from build, checkin, sbom") {
		t.Errorf("unknown measure: %v", err)
	}
}

func TestUpdateDoc(t *testing.T) {
	p := filepath.Join(t.TempDir(), "benchmarks.md")
	if err := os.WriteFile(p, []byte("# Benchmarks\n\nhand-written\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateDoc(p, "first\n"); err != nil {
		t.Fatal(err)
	}
	if err := UpdateDoc(p, "second\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	s := string(b)
	if !strings.Contains(s, "hand-written") || !strings.Contains(s, "second") || strings.Contains(s, "first") || strings.Count(s, BeginMarker) != 1 {
		t.Errorf("doc after two updates:\n%s", s)
	}
	if err := os.WriteFile(p, []byte("x\n"+BeginMarker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateDoc(p, "third\n"); err == nil || !strings.Contains(err.Error(), "only one of the markers") {
		t.Errorf("one marker: %v", err)
	}
}

func TestMarkdownRow(t *testing.T) {
	rep := &Report{Started: time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC), Elapsed: 200, Figures: []Figure{
		Seconds("build.fresh", "kiln fresh bake", 14*time.Second).Against("raw", 20, "s").RatioAtMost(0.7).Noted("cache | emptied"),
	}}
	md := rep.Markdown()
	for _, want := range []string{"2026-12-06 23:00 UTC", "3 min 20 s", "| kiln fresh bake (cache \\| emptied) | 14.0 s | raw 20.0 s | 0.70× | ≤ 0.7× | yes |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestCheckinLoadCountsFailures(t *testing.T) {
	// A load against a port nobody listens on fails to start, clearly.
	_, err := CheckinLoad{Addr: "127.0.0.1:1", Path: "/", N: 1, Clients: 1, Pool: 1}.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "check-in load") {
		t.Errorf("no listener: %v", err)
	}
	if _, err := (CheckinLoad{}).Run(context.Background()); err == nil {
		t.Error("a load of zero clients must be refused")
	}
}
