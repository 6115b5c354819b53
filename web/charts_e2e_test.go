package web_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/fleet"
	"github.com/kiln-project/kiln/store"
	"github.com/kiln-project/kiln/web"
)

// synthFixture is a fixture on a synthetic fleet (fleet.Synthesize) with
// age policies, a recorded fleet history, a service whose last rollout
// was rolled back (with its timeline samples) and finished pipeline runs.
type synthFixture struct {
	fixture
	envs    []string
	rollout *kiln.Rollout
	samples []*kiln.RolloutSample
	runs    []int64
}

func newSynthFixture(t *testing.T) *synthFixture {
	t.Helper()
	ctx := kiln.WithActor(context.Background(), "local:test")
	logger := slog.New(slog.DiscardHandler)
	clock := fleet.NewSynthClock(time.Now().UTC())
	db, err := store.Open(ctx, "", t.TempDir(), logger, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &synthFixture{fixture: fixture{db: db}, envs: []string{"dev", "prod", "staging"}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	day := 24 * time.Hour
	must(fleet.Synthesize(ctx, db, clock, fleet.SynthConfig{Images: 6, Versions: 60, Instances: 3000, Advisories: 4,
		Envs: f.envs, Seed: 7, Span: 240 * day}))
	must(db.SetAgePolicy(ctx, &kiln.AgePolicy{Environment: "prod", MaxAge: kiln.AgeOf(90 * day)}))
	must(db.SetAgePolicy(ctx, &kiln.AgePolicy{Environment: "staging", MaxAge: kiln.AgeOf(100 * day)}))
	// The store's clock follows the wall clock from here, as the API's
	// and the dashboard's do.
	clock.Set(time.Now().UTC())
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				clock.Set(time.Now().UTC())
			}
		}
	}()
	t.Cleanup(func() { close(stop) })

	// History: 30 earlier days made up, today's recorded as kiln serve does.
	today := kiln.Day(time.Now())
	for d := 30; d >= 1; d-- {
		var cs []*kiln.FleetCount
		for i, env := range f.envs {
			n := 900 + 10*i + d
			cs = append(cs, &kiln.FleetCount{Environment: env, Instances: n, OnLatest: n/5 + 3*(30-d), OverAge: 400 - 5*d + 30*i,
				Exposed: kiln.ExposureCounts{Low: 600 - 7*d, Medium: 500 - 7*d, High: 400 - 6*d, Critical: 300 - 5*d}})
		}
		must(db.RecordSnapshot(ctx, today.Add(-time.Duration(d)*day), cs))
	}
	fl := fleet.New(db, db)
	_, err = fl.RecordHistory(ctx, db, db, 90*day)
	must(err)

	f.seedRollout(t, ctx, db)
	f.seedRuns(t, ctx, db)

	_, f.viewer, err = db.CreateToken(ctx, &kiln.NewToken{Name: "charts-viewer", Role: kiln.RoleViewer})
	must(err)
	dash, err := web.New(web.Config{Registry: db, Inventory: db, Fleet: db, Advisories: db, Runs: db, Tokens: db, Channels: db, Logger: logger, Version: "test",
		History: db, Services: db, Rollouts: db, Timeline: db})
	must(err)
	f.srv = httptest.NewServer(web.Mount(dash, api.New(api.Config{Logger: logger, Version: "test"}.WithStores(db))))
	t.Cleanup(f.srv.Close)
	return f
}

// seedRollout records service web of img-000 in prod and a rollout from
// img-000-9 to img-000-10 that finished three batches, saw its error rate
// rise, turned back at 75 s and was rolled back: a sample a second.
func (f *synthFixture) seedRollout(t *testing.T, ctx context.Context, db *store.DB) {
	t.Helper()
	from, to := kiln.VersionRef{Image: "img-000", Number: 9}, kiln.VersionRef{Image: "img-000", Number: 10}
	if err := db.CreateService(ctx, &kiln.Service{Name: "web", Image: "img-000", Environment: "prod", Replicas: 4, Listen: "127.0.0.1:18099"}); err != nil {
		t.Fatal(err)
	}
	r := &kiln.Rollout{Service: "web", From: from, To: to}
	if err := db.CreateRollout(ctx, r); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-3 * time.Minute).UTC().Truncate(time.Second)
	var req, errs float64
	for sec := 0; sec <= 119; sec++ {
		s := &kiln.RolloutSample{Rollout: r.ID, At: t0.Add(time.Duration(sec) * time.Second), State: kiln.RolloutRunning, FrontEndPID: 4242}
		onTo := min(sec/20, 3)
		if sec >= 75 {
			s.State = kiln.RolloutRollingBack
			onTo = max(0, 3-(sec-75)/10)
		}
		if sec == 119 {
			s.State = kiln.RolloutRolledBack
		}
		if s.State == kiln.RolloutRunning {
			s.Batch = onTo
		} else {
			s.Batch = 3 - onTo
		}
		s.Versions = []kiln.VersionCount{{Version: from, Instances: 4 - onTo}}
		if onTo > 0 {
			s.Versions = append(s.Versions, kiln.VersionCount{Version: to, Instances: onTo})
		}
		req += 50
		switch {
		case sec >= 60 && sec < 75:
			errs += 15
		case sec < 60:
			errs += 0.5
		default:
			errs += 0.2
		}
		s.Requests, s.Errors = int64(req), int64(errs)
		if sec < 75 && onTo > 0 {
			s.HealthPassed = 2
		}
		if sec >= 70 && sec < 75 {
			s.HealthPassed, s.HealthFailed = 0, 2
		}
		if err := db.RecordRolloutSample(ctx, s); err != nil {
			t.Fatal(err)
		}
		f.samples = append(f.samples, s)
	}
	r.State, r.Batch, r.Reason = kiln.RolloutRolledBack, 3, "error rate rose to 30.0% (225 of 750 requests) during bake; the limit is 1.0%"
	if err := db.UpdateRollout(ctx, r); err != nil {
		t.Fatal(err)
	}
	f.rollout = r
}

// seedRuns records four finished runs of img-001 whose test stage gets
// slower each time; the last one's scan failed.
func (f *synthFixture) seedRuns(t *testing.T, ctx context.Context, db *store.DB) {
	t.Helper()
	stages := []kiln.Stage{{Name: "build", Kind: kiln.StageBuild}, {Name: "test", Kind: kiln.StageTest}, {Name: "scan", Kind: kiln.StageScan}}
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for i := range 4 {
		run, _, err := db.EnqueueRun(ctx, &kiln.NewRun{Image: "img-001", Estate: "/srv/estate", Trigger: "manual", Stages: stages})
		if err != nil {
			t.Fatal(err)
		}
		if c, err := db.ClaimRun(ctx, "test:1"); err != nil || c == nil || c.ID != run.ID {
			t.Fatalf("claim run %d: %v %v", run.ID, c, err)
		}
		at := base.Add(time.Duration(i) * 10 * time.Minute)
		took := []time.Duration{40 * time.Second, time.Duration(30+25*i) * time.Second, 12 * time.Second}
		status := kiln.RunSucceeded
		for j, st := range stages {
			st.Status, st.StartedAt, st.FinishedAt = kiln.StagePassed, at, at.Add(took[j])
			if i == 3 && j == 2 {
				st.Status, status = kiln.StageFailed, kiln.RunFailed
			}
			if err := db.UpdateStage(ctx, run.ID, "test:1", j, st, nil); err != nil {
				t.Fatal(err)
			}
			at = st.FinishedAt
		}
		if err := db.FinishRun(ctx, run.ID, "test:1", status, ""); err != nil {
			t.Fatal(err)
		}
		f.runs = append(f.runs, run.ID)
	}
}

// pageShot saves the page's main part as NAME.png in the test's artifact
// directory (kept with go test -artifacts -outputdir DIR) and, when
// KILN_SCREENSHOTS is set, there too.
func pageShot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	page := in(t, ctx, "screenshot "+name, chromedp.Screenshot(chromedp.CSS("body")))
	// The first chart alone as well, at full size, for looking at it.
	fig := in(t, ctx, "screenshot of a chart on "+name, chromedp.ScreenshotScale(chromedp.CSS("figure.chart"), 1.5))
	dirs := []string{t.ArtifactDir()}
	if d := os.Getenv("KILN_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		for file, png := range map[string][]byte{name + ".png": page, name + "-chart.png": fig} {
			if err := os.WriteFile(filepath.Join(d, file), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// svgData reads data attributes of the elements matching sel.
func svgData(sel string, names ...string) chromedp.Action[[]map[string]string] {
	return chromedp.Evaluate[[]map[string]string](fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map(e => {
		const o = {}; for (const n of %s) o[n] = e.getAttribute("data-" + n) || ""; return o })`, sel, jsList(names)))
}

func jsList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ",") + "]"
}

func num(t *testing.T, what, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64)
	if err != nil {
		t.Fatalf("%s: the chart says %q, not a number", what, s)
	}
	return f
}

// TestChartsInBrowser loads every page with a picture in headless
// Chromium over a synthetic fleet and checks each chart against the API:
// the version spread's segments against the fleet report (and, marked for
// an advisory, against its exposure), the age histograms' bins against
// the usage rows binned again and their count past the limit against the
// overage report, the last point of each trend against today's report,
// usage and exposure, the rollout timeline against its samples, and the
// stage durations against the runs. It saves a screenshot of each page;
// any CSP violation or script error the browser reports fails it.
func TestChartsInBrowser(t *testing.T) {
	ctx, csp := browser(t)
	f := newSynthFixture(t)
	base := f.srv.URL
	steps(t, ctx, "sign in",
		chromedp.Navigate(base+"/ui/fleet"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), f.viewer),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("spread")),
	)

	t.Run("spread", func(t *testing.T) {
		var rep kiln.Report
		f.apiJSON(t, "/api/v1/fleet/report", &rep)
		segs := in(t, ctx, "spread segments", svgData("#spread rect.seg", "key", "value"))
		if len(segs) != len(rep.Rows) || len(rep.Rows) == 0 {
			t.Fatalf("the spread has %d segments, the report %d rows", len(segs), len(rep.Rows))
		}
		for i, row := range rep.Rows {
			if segs[i]["key"] != row.Name || num(t, row.Name, segs[i]["value"]) != float64(row.Instances) {
				t.Errorf("segment %d: %v; the report says %s with %d", i, segs[i], row.Name, row.Instances)
			}
		}
		bars := in(t, ctx, "spread bars", svgData("#spread g.bar", "label"))
		if len(bars) != 6 {
			t.Errorf("%d bars, want one per image line (6)", len(bars))
		}
		pageShot(t, ctx, "fleet")

		// Marked for an advisory: the hatched segments are the exposed rows.
		var exp kiln.Exposure
		f.apiJSON(t, "/api/v1/fleet/exposed?advisory=SYNTH-0001", &exp)
		steps(t, ctx, "mark exposure",
			chromedp.SendKeys(chromedp.ID("mark-advisory"), "SYNTH-0001"),
			chromedp.Submit(chromedp.ID("mark-advisory")),
			chromedp.WaitVisible(chromedp.ID("spread-exposed")),
		)
		hatched := in(t, ctx, "hatched", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#spread rect.seg")).
			filter(r => r.parentNode.querySelector('rect.pattern.hatch[x="' + r.getAttribute("x") + '"][y="' + r.getAttribute("y") + '"]')).
			map(r => r.dataset.key)`))
		var want []string
		for _, row := range exp.Rows {
			want = append(want, row.Name)
		}
		slices.Sort(hatched)
		slices.Sort(want)
		if !slices.Equal(hatched, want) || len(want) == 0 {
			t.Errorf("hatched segments %v; exposed per the API %v", hatched, want)
		}
		if n := in(t, ctx, "exposed count", chromedp.Text(chromedp.ID("spread-exposed"))); num(t, "exposed", n) != float64(exp.Instances) {
			t.Errorf("the page says %s instances exposed, the API %d", n, exp.Instances)
		}
		pageShot(t, ctx, "fleet-exposure")
		// A segment is a link to its drill-down.
		steps(t, ctx, "drill from a segment",
			chromedp.Click(chromedp.CSS(`#spread a rect.seg[data-key="`+rep.Rows[0].Name+`"]`)),
			chromedp.WaitVisible(chromedp.ID("instances")),
		)
		if loc := in(t, ctx, "location", chromedp.Location()); !strings.Contains(loc, "/ui/fleet/instances?image="+rep.Rows[0].Image) {
			t.Errorf("the segment of %s went to %s", rep.Rows[0].Name, loc)
		}
	})

	t.Run("overage", func(t *testing.T) {
		steps(t, ctx, "overage", chromedp.Navigate(base+"/ui/overage"), chromedp.WaitVisible(chromedp.CSS("figure.age-chart svg")))
		figs := in(t, ctx, "age charts", svgData("figure.age-chart", "env", "limit-days", "past"))
		if len(figs) != 2 {
			t.Fatalf("%d age charts, want prod and staging", len(figs))
		}
		for i, fig := range figs {
			env := fig["env"]
			var ov kiln.Overage
			f.apiJSON(t, "/api/v1/fleet/overage?env="+env, &ov)
			var usage struct {
				Usage []*kiln.Usage `json:"usage"`
			}
			f.apiJSON(t, "/api/v1/fleet/usage?env="+env, &usage)
			if num(t, "past", fig["past"]) != float64(ov.Instances) || ov.Instances == 0 {
				t.Errorf("%s: the chart says %s past the limit, the overage report %d", env, fig["past"], ov.Instances)
			}
			bins := in(t, ctx, "bins", svgData(fmt.Sprintf("figure.age-chart:nth-of-type(%d) rect.bin", i+1), "from", "to", "value"))
			// Bin the API's usage rows again: age in (from, to] days.
			now := time.Now()
			counts := make([]int, len(bins))
			limit := num(t, "limit", fig["limit-days"])
			past := 0
			for _, u := range usage.Usage {
				age := now.Sub(u.BuiltAt).Hours() / 24
				for j, b := range bins {
					if (age > num(t, "from", b["from"]) || j == 0) && age <= num(t, "to", b["to"]) {
						counts[j] += u.Instances
						if num(t, "from", b["from"]) >= limit {
							past += u.Instances
						}
						break
					}
				}
			}
			for j, b := range bins {
				if num(t, "count", b["value"]) != float64(counts[j]) {
					t.Errorf("%s bin %s–%s: the chart says %s, the usage rows give %d", env, b["from"], b["to"], b["value"], counts[j])
				}
			}
			if past != ov.Instances {
				t.Errorf("%s: the bins past the limit hold %d, the overage report says %d", env, past, ov.Instances)
			}
		}
		pageShot(t, ctx, "overage")
	})

	t.Run("trends", func(t *testing.T) {
		steps(t, ctx, "trends", chromedp.Navigate(base+"/ui/trends?severity=high"), chromedp.WaitVisible(chromedp.ID("trend-latest")))
		last := func(id string) map[string]float64 {
			out := map[string]float64{}
			for _, s := range in(t, ctx, id, svgData("#"+id+" g.series", "series", "last", "last-at")) {
				out[s["series"]] = num(t, id, s["last"])
				if at, _ := time.Parse(time.RFC3339, s["last-at"]); !at.Equal(kiln.Day(time.Now())) {
					t.Errorf("%s %s: the last point is of %s, not today", id, s["series"], s["last-at"])
				}
			}
			return out
		}
		onLatest, exposed, over := last("trend-latest"), last("trend-exposed"), last("trend-overage")
		var advs struct {
			Advisories []*kiln.Advisory `json:"advisories"`
		}
		f.apiJSON(t, "/api/v1/advisories", &advs)
		for _, env := range f.envs {
			var rep kiln.Report
			f.apiJSON(t, "/api/v1/fleet/report?env="+env, &rep)
			var usage struct {
				Usage []*kiln.Usage `json:"usage"`
			}
			f.apiJSON(t, "/api/v1/fleet/usage?env="+env, &usage)
			latest := 0
			for _, u := range usage.Usage {
				if u.LatestReady > 0 && u.Number == u.LatestReady {
					latest += u.Instances
				}
			}
			// The synthetic advisories are image-level: they count at
			// every severity. An instance counts once however many
			// advisories it is exposed to.
			exp := map[string]int{}
			for _, a := range advs.Advisories {
				var e kiln.Exposure
				f.apiJSON(t, "/api/v1/fleet/exposed?env="+env+"&advisory="+a.ID, &e)
				for _, row := range e.Rows {
					exp[row.Name] = row.Instances
				}
			}
			exposedN := 0
			for _, n := range exp {
				exposedN += n
			}
			if onLatest[env] != float64(latest) || exposed[env] != float64(exposedN) || over[env] != float64(rep.OverAge) {
				t.Errorf("%s: trends end at %g on latest, %g exposed, %g over age; the API says %d, %d, %d",
					env, onLatest[env], exposed[env], over[env], latest, exposedN, rep.OverAge)
			}
			if latest == 0 || exposedN == 0 {
				t.Errorf("%s: the synthetic fleet gives %d on latest and %d exposed; the comparison proves little", env, latest, exposedN)
			}
		}
		if n := in(t, ctx, "points", chromedp.Evaluate[int](`document.querySelectorAll("#trend-latest g.series path.line")[0].getAttribute("d").split("L").length`)); n != 31 {
			t.Errorf("the first trend line has %d points, want 31 days", n)
		}
		pageShot(t, ctx, "trends")
	})

	t.Run("rollout", func(t *testing.T) {
		steps(t, ctx, "service", chromedp.Navigate(base+"/ui/services"), chromedp.Click(chromedp.CSS(`#services a[href="/ui/services/web"]`)),
			chromedp.WaitVisible(chromedp.ID("timeline")))
		lastSample := f.samples[len(f.samples)-1]
		series := in(t, ctx, "instances", svgData("#timeline-instances g.series", "series", "last"))
		if len(series) != 2 {
			t.Fatalf("%d version lines, want 2 (img-000-9 and img-000-10)", len(series))
		}
		for _, s := range series {
			want := 0
			for _, c := range lastSample.Versions {
				if c.Version.String() == s["series"] {
					want = c.Instances
				}
			}
			if num(t, s["series"], s["last"]) != float64(want) {
				t.Errorf("%s ends at %s instances, the last sample says %d", s["series"], s["last"], want)
			}
		}
		var rollback time.Time
		for _, s := range f.samples {
			if s.State == kiln.RolloutRollingBack {
				rollback = s.At
				break
			}
		}
		for _, id := range []string{"timeline-instances", "timeline-traffic", "timeline-health"} {
			marks := in(t, ctx, "rollback mark", svgData("#"+id+" g.marker.strong", "label", "at"))
			if len(marks) != 1 || marks[0]["label"] != "rollback" || marks[0]["at"] != rollback.Format(time.RFC3339) {
				t.Errorf("%s: rollback marks %v, want one at %s", id, marks, rollback.Format(time.RFC3339))
			}
		}
		traffic := in(t, ctx, "traffic", svgData("#timeline-traffic g.series", "series", "last"))
		prev := f.samples[len(f.samples)-2]
		wantRate := map[string]float64{"requests/s": float64(lastSample.Requests - prev.Requests), "errors/s": float64(lastSample.Errors - prev.Errors)}
		for _, s := range traffic {
			if math.Abs(num(t, s["series"], s["last"])-wantRate[s["series"]]) > 0.01 {
				t.Errorf("%s ends at %s, the samples give %g", s["series"], s["last"], wantRate[s["series"]])
			}
		}
		passed, failed := 0, 0
		for _, s := range f.samples {
			passed += s.HealthPassed
			failed += s.HealthFailed
		}
		cols := in(t, ctx, "health", svgData("#timeline-health rect.col", "key", "value"))
		gotPassed, gotFailed := 0.0, 0.0
		for _, c := range cols {
			if c["key"] == "passed" {
				gotPassed += num(t, "passed", c["value"])
			} else {
				gotFailed += num(t, "failed", c["value"])
			}
		}
		if gotPassed != float64(passed) || gotFailed != float64(failed) || failed == 0 {
			t.Errorf("health columns: %g passed, %g failed; the samples %d, %d", gotPassed, gotFailed, passed, failed)
		}
		pageShot(t, ctx, "service")
	})

	t.Run("runs", func(t *testing.T) {
		steps(t, ctx, "runs", chromedp.Navigate(base+"/ui/runs?image=img-001"), chromedp.WaitVisible(chromedp.ID("stages-img-001")))
		segs := in(t, ctx, "stage segments", chromedp.Evaluate[[]map[string]string](`Array.from(document.querySelectorAll("#stages-img-001 g.bar")).flatMap(g =>
			Array.from(g.querySelectorAll("rect.seg")).map(r => ({run: g.dataset.label, stage: r.dataset.key, value: r.dataset.value})))`))
		n := 0
		for _, id := range f.runs {
			var run kiln.Run
			f.apiJSON(t, "/api/v1/runs/"+strconv.FormatInt(id, 10), &run)
			for _, st := range run.Stages {
				want := st.FinishedAt.Sub(st.StartedAt).Seconds()
				found := false
				for _, s := range segs {
					if s["run"] == "run "+strconv.FormatInt(id, 10) && s["stage"] == st.Name {
						found = true
						if math.Abs(num(t, "duration", s["value"])-want) > 0.01 {
							t.Errorf("run %d %s: the chart says %s s, the API %g s", id, st.Name, s["value"], want)
						}
					}
				}
				if !found {
					t.Errorf("run %d stage %s is not in the chart", id, st.Name)
				}
				n++
			}
		}
		if len(segs) != n {
			t.Errorf("the chart has %d segments, the runs %d stages", len(segs), n)
		}
		pageShot(t, ctx, "runs")
	})
	csp.check(t)
}
