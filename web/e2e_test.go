package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/ci"
)

// chromiumPath is Debian's chromium (apt-get install chromium).
const chromiumPath = "/usr/bin/chromium"

// needChromium skips the test when chromium is not installed, and fails
// it in CI, where .ci/run installs it.
func needChromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return chromiumPath
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	ci.SkipOrFail(t, "headless Chromium is needed for the dashboard's browser test: apt-get install -y chromium")
	return ""
}

// browser starts a headless Chromium with a fresh profile and returns a
// tab's context. The flags keep it from reaching out to Google's services,
// which this machine's network refuses.
func browser(t *testing.T) (context.Context, *cspWatch) {
	t.Helper()
	path := needChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // root runs it here
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900), // a laptop screen
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancelTab)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTimeout)
	w := &cspWatch{}
	// Listen starts the browser and opens the tab; chromedp enables the
	// Log and Runtime domains itself.
	if err := chromedp.Listen(ctx, w.listen); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx, w
}

// cspWatch collects what the browser reports as refused by the
// Content-Security-Policy or thrown by a script: a page must cause neither.
type cspWatch struct {
	mu       sync.Mutex
	problems []string
}

func (w *cspWatch) listen(ev any) {
	var msg string
	switch e := ev.(type) {
	case *log.EventEntryAdded:
		if strings.Contains(e.Entry.Text, "Content Security Policy") || e.Entry.Level == log.EntryLevelError {
			msg = e.Entry.Text + " " + e.Entry.URL
		}
	case *runtime.EventExceptionThrown:
		msg = e.ExceptionDetails.Text
	}
	if msg != "" {
		w.mu.Lock()
		w.problems = append(w.problems, msg)
		w.mu.Unlock()
	}
}

func (w *cspWatch) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.problems {
		t.Errorf("browser reported: %s", p)
	}
}

// apiJSON fetches an API path with the viewer token.
func (f *fixture) apiJSON(t *testing.T, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+f.viewer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// shownRow is one table row as the browser shows it.
type shownRow struct {
	Image     string `json:"image"`
	Number    string `json:"number"`
	Instances string `json:"instances"`
	Lost      string `json:"lost"`
	OverAge   string `json:"overage"`
}

// readRows reads the rows of table sel from the DOM: data attributes and
// the text of the count cells, exactly as rendered.
func readRows(sel string) chromedp.Action[[]shownRow] {
	js := fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map(tr => ({
		image: tr.dataset.image, number: tr.dataset.number,
		instances: (tr.querySelector("td.instances") || {}).textContent || "",
		lost: (tr.querySelector("td.lost") || {}).textContent || "",
		overage: (tr.querySelector("td.overage") || {}).textContent || ""}))`, sel+" tbody tr[data-image]")
	return chromedp.Evaluate[[]shownRow](js)
}

func atoi(t *testing.T, what, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("%s: the page shows %q, not a number", what, s)
	}
	return n
}

// screenshot saves the page as NAME.png under $KILN_SCREENSHOTS, when set
// (for looking at the pages, e.g. at laptop size, when changing them).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("KILN_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := in(t, ctx, "screenshot "+name, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// in runs one action in the browser and returns its value.
func in[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// steps runs actions that return nothing.
func steps(t *testing.T, ctx context.Context, what string, as ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, as...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestDashboardInBrowser drives the real pages in headless Chromium: sign
// in, read the fleet report from the DOM and compare every number with the
// API's JSON, filter by environment, drill down to the instances behind a
// row, check the exposure to an advisory, follow a lineage link, and sign
// out. Any CSP violation or script error the browser reports fails it.
func TestDashboardInBrowser(t *testing.T) {
	ctx, csp := browser(t)
	f := newFixture(t, fixtureOpts{})
	base := f.srv.URL

	// Signing in: the report sends us to the sign-in form and back.
	steps(t, ctx, "sign in",
		chromedp.Navigate(base+"/ui/fleet"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), f.viewer),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("report")),
	)
	if loc := in(t, ctx, "location", chromedp.Location()); loc != base+"/ui/fleet" {
		t.Errorf("after sign-in the browser is at %s, want the fleet report", loc)
	}
	if cookies := in(t, ctx, "document.cookie", chromedp.Evaluate[string](`document.cookie`)); cookies != "" {
		t.Errorf("scripts can read cookies %q; the session cookie must be HttpOnly", cookies)
	}

	compareReport := func(env string) {
		t.Helper()
		rows := in(t, ctx, "read the report", readRows("#report"))
		versions := in(t, ctx, "total versions", chromedp.Text(chromedp.ID("total-versions")))
		instances := in(t, ctx, "total instances", chromedp.Text(chromedp.ID("total-instances")))
		overage := in(t, ctx, "total over age", chromedp.Text(chromedp.ID("total-overage")))
		var rep kiln.Report
		f.apiJSON(t, "/api/v1/fleet/report?env="+env, &rep)
		if len(rows) != len(rep.Rows) {
			t.Fatalf("env %q: the page shows %d rows, the API %d", env, len(rows), len(rep.Rows))
		}
		for i, want := range rep.Rows {
			got := rows[i]
			if got.Image != want.Image || atoi(t, "number", got.Number) != want.Number ||
				atoi(t, want.Name+" instances", got.Instances) != want.Instances ||
				atoi(t, want.Name+" lost", got.Lost) != want.Lost ||
				atoi(t, want.Name+" over age", got.OverAge) != want.OverAge {
				t.Errorf("env %q row %d: page %+v, API %+v", env, i, got, *want)
			}
		}
		if atoi(t, "versions", versions) != rep.Versions || atoi(t, "instances", instances) != rep.Instances ||
			atoi(t, "over age", overage) != rep.OverAge {
			t.Errorf("env %q totals: page %s versions, %s instances, %s over age; API %d, %d, %d",
				env, versions, instances, overage, rep.Versions, rep.Instances, rep.OverAge)
		}
		if rep.Instances == 0 {
			t.Errorf("env %q: the fixture's fleet is empty; the comparison proves nothing", env)
		}
	}
	compareReport("")
	screenshot(t, ctx, "fleet")

	// The environment filter is a plain GET form.
	steps(t, ctx, "filter by env",
		chromedp.SetValue(chromedp.ID("env"), "prod"),
		chromedp.Submit(chromedp.ID("env")),
		chromedp.WaitReady(chromedp.CSS(`#env option[value="prod"][selected]`)),
		chromedp.WaitVisible(chromedp.ID("report")),
	)
	if loc := in(t, ctx, "location", chromedp.Location()); !strings.HasSuffix(loc, "/ui/fleet?env=prod") {
		t.Errorf("after filtering the browser is at %s", loc)
	}
	compareReport("prod")

	// Drill down: the prod instances of basic-linux-1.
	steps(t, ctx, "drill down",
		chromedp.Click(chromedp.CSS(`#report tr[data-image="basic-linux"][data-number="1"] a.drill`)),
		chromedp.WaitVisible(chromedp.ID("instances")),
	)
	if loc := in(t, ctx, "location", chromedp.Location()); !strings.Contains(loc, "/ui/fleet/instances?") || !strings.Contains(loc, "env=prod") {
		t.Errorf("drill-down went to %s", loc)
	}
	screenshot(t, ctx, "instances")
	total := in(t, ctx, "drill-down total", chromedp.Text(chromedp.ID("total")))
	ids := in(t, ctx, "drill-down ids", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#instances tbody tr[data-id]")).map(tr => tr.dataset.id)`))
	var list struct {
		Instances []*kiln.Instance `json:"instances"`
		Total     int              `json:"total"`
	}
	f.apiJSON(t, "/api/v1/instances?image=basic-linux&version=1&env=prod", &list)
	var apiIDs []string
	for _, inst := range list.Instances {
		apiIDs = append(apiIDs, inst.ID)
	}
	slices.Sort(ids)
	slices.Sort(apiIDs)
	if atoi(t, "drill-down total", total) != list.Total || !slices.Equal(ids, apiIDs) || len(ids) == 0 {
		t.Errorf("drill-down shows %s instances %v; the API %d %v", total, ids, list.Total, apiIDs)
	}

	// Exposure to an advisory, chosen in the form.
	steps(t, ctx, "exposure",
		chromedp.Navigate(base+"/ui/exposure"),
		chromedp.WaitVisible(chromedp.ID("advisory")),
		chromedp.SendKeys(chromedp.ID("advisory"), "KILN-TEST-1"),
		chromedp.Submit(chromedp.ID("advisory")),
		chromedp.WaitVisible(chromedp.ID("exposure")),
	)
	screenshot(t, ctx, "exposure")
	exposed := in(t, ctx, "exposure total", chromedp.Text(chromedp.ID("exposure-total")))
	rows := in(t, ctx, "exposure rows", readRows("#exposure"))
	var exp kiln.Exposure
	f.apiJSON(t, "/api/v1/fleet/exposed?advisory=KILN-TEST-1", &exp)
	if atoi(t, "exposed total", exposed) != exp.Instances || exp.Instances == 0 {
		t.Errorf("exposure total: page %s, API %d", exposed, exp.Instances)
	}
	if len(rows) != len(exp.Rows) {
		t.Fatalf("exposure: page shows %d rows, the API %d", len(rows), len(exp.Rows))
	}
	for i, want := range exp.Rows {
		if rows[i].Image != want.Image || atoi(t, "number", rows[i].Number) != want.Number || atoi(t, "instances", rows[i].Instances) != want.Instances {
			t.Errorf("exposure row %d: page %+v, API %s with %d", i, rows[i], want.Name, want.Instances)
		}
	}

	// The image history shows lineage; a base link leads to the base.
	steps(t, ctx, "image history",
		chromedp.Navigate(base+"/ui/images/appserver"),
		chromedp.WaitVisible(chromedp.ID("versions")),
		chromedp.Click(chromedp.CSS(`#versions tr[data-number="1"] td:nth-child(7) a`)),
		chromedp.WaitVisible(chromedp.ID("version-status")),
	)
	if loc := in(t, ctx, "location", chromedp.Location()); !strings.HasSuffix(loc, "/ui/images/basic-linux/versions/1") {
		t.Errorf("the base link of appserver-1 went to %s", loc)
	}

	for _, p := range []string{"overage", "images", "images/appserver", "runs", "runs/1"} {
		steps(t, ctx, p, chromedp.Navigate(base+"/ui/"+p), chromedp.WaitVisible(chromedp.CSS("main h1")))
		if os.Getenv("KILN_SCREENSHOTS") != "" {
			screenshot(t, ctx, strings.ReplaceAll(p, "/", "-"))
		}
	}

	// Signing out ends the session.
	steps(t, ctx, "sign out",
		chromedp.Click(chromedp.CSS(`form.signout button`)),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.Navigate(base+"/ui/fleet"),
		chromedp.WaitVisible(chromedp.ID("token")),
	)
	csp.check(t)
}
