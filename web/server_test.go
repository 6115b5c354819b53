package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// get fetches path with c and returns the response and its body.
func get(t *testing.T, c *http.Client, f *fixture, path string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// inlineCode finds what the CSP forbids or kiln does not allow: script
// elements, event-handler attributes, javascript: URLs, inline styles, and
// assets from another origin.
var inlineCode = regexp.MustCompile(`(?i)<script|\son[a-z]+\s*=|javascript:|<style|\sstyle\s*=|<link[^>]+href="https?:|\ssrc="https?:`)

func checkPage(t *testing.T, path string, resp *http.Response, body string) {
	t.Helper()
	h := resp.Header
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") ||
		!strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("%s: Content-Security-Policy %q does not forbid inline script and framing", path, csp)
	}
	if v := h.Get("X-Content-Type-Options"); v != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q, want nosniff", path, v)
	}
	if v := h.Get("X-Frame-Options"); v != "DENY" {
		t.Errorf("%s: X-Frame-Options %q, want DENY", path, v)
	}
	if m := inlineCode.FindString(body); m != "" {
		t.Errorf("%s: page contains %q: no inline script, inline style or external asset is allowed", path, m)
	}
	if !strings.Contains(body, `<link rel="stylesheet" href="/ui/static/kiln.css">`) {
		t.Errorf("%s: page does not use the embedded stylesheet", path)
	}
}

func TestPages(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client(t)
	if resp := f.signIn(t, c, f.viewer, "/ui/fleet"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/fleet" {
		t.Fatalf("sign in: %d to %q, want 303 to /ui/fleet", resp.StatusCode, resp.Header.Get("Location"))
	}
	pages := []struct {
		path string
		want []string // strings the page must show
	}{
		{"/ui/fleet", []string{`id="total-instances">14<`, `id="total-versions">6<`, `id="total-unknown">1<`, `id="total-overage">5<`, "appserver-9"}},
		{"/ui/fleet?env=prod", []string{`id="total-instances">7<`, `id="total-overage">5<`}},
		{"/ui/fleet?env=Nowhere%20Land", []string{`id="total-instances">0<`, "No instances in Nowhere Land"}},
		{"/ui/fleet/instances?image=basic-linux&version=1", []string{`<span id="total">4</span>`, "basic-linux-1"}},
		{"/ui/fleet/instances?image=basic-linux&version=1&env=prod", []string{`<span id="total">3</span>`}},
		{"/ui/fleet/instances?image=appserver&version=9", []string{"unknown to the registry", "stray-1"}},
		{"/ui/fleet/instances?image=appserver", []string{`<span id="total">7</span>`}},
		{"/ui/exposure", []string{"KILN-TEST-1", `datalist id="advisories"`}},
		{"/ui/exposure?advisory=KILN-TEST-1", []string{`id="exposure-total">10<`, `id="exposed-versions">3<`}},
		{"/ui/exposure?advisory=KILN-TEST-1&env=prod", []string{`id="exposure-total">5<`}},
		{"/ui/overage", []string{`id="overage-total">5<`, "90d"}},
		{"/ui/overage?max_age=100d", []string{`id="overage-total">11<`}},
		{"/ui/stale", []string{`id="stale-instances">6<`}},
		{"/ui/images", []string{"basic-linux", "out of date: basic-linux-2 is ready"}},
		{"/ui/images/appserver", []string{"appserver-3", "reheat", `href="/ui/images/appserver/versions/1"`, "out of date: basic-linux-2"}},
		{"/ui/images/appserver/versions/2", []string{"appserver-1", "basic-linux-1", "libssl3", `id="version-status">ready<`}},
		{"/ui/runs", []string{"succeeded", `href="/ui/runs/1"`}},
		{"/ui/runs?image=appserver", []string{"succeeded"}},
		{"/ui/runs/1", []string{"3 of 3 tests passed", "mmdebstrap bookworm &lt;done&gt;", `id="run-status">succeeded<`}},
		{"/ui/signin", []string{`name="token"`, `type="password"`}},
		// The pictures: the version spread, the age histogram of prod, the
		// stage durations, an empty history, no services.
		{"/ui/fleet?advisory=KILN-TEST-1", []string{`id="spread"`, `data-key="basic-linux-1" data-value="4"`, `id="spread-exposed">10<`, `url(#spread-hatch)`}},
		{"/ui/overage?env=prod", []string{`class="chart age-chart" data-env="prod" data-limit-days="90" data-past="5"`, "<title id=\"ages-0-title\">"}},
		{"/ui/runs?image=appserver", []string{`id="stages-appserver"`, `<desc id="stages-appserver-desc">`}},
		{"/ui/trends", []string{"Nothing recorded yet", `id="severity"`}},
		{"/ui/services", []string{"No services"}},
	}
	for _, p := range pages {
		resp, body := get(t, c, f, p.path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200\n%s", p.path, resp.StatusCode, body)
			continue
		}
		checkPage(t, p.path, resp, body)
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET %s: Cache-Control %q, want no-store", p.path, cc)
		}
		for _, w := range p.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s: page lacks %q", p.path, w)
			}
		}
		if strings.Contains(body, f.viewer) {
			t.Errorf("GET %s: the page shows the token's secret", p.path)
		}
	}
	resp, css := get(t, c, f, "/ui/static/kiln.css")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || !strings.Contains(css, "table.data") {
		t.Errorf("stylesheet: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if strings.Contains(css, "@import") || strings.Contains(css, "url(http") {
		t.Errorf("the stylesheet loads something from elsewhere")
	}
}

func TestPageErrors(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client(t)
	f.signIn(t, c, f.viewer, "")
	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/ui/images/no-such-image", 404, "no-such-image"},
		{"/ui/images/appserver/versions/77", 404, "appserver-77"},
		{"/ui/images/appserver/versions/x", 400, "not a version number"},
		{"/ui/fleet?env=pr%0Aod", 400, "control characters"},
		{"/ui/fleet/instances?image=", 400, "pick a row"},
		{"/ui/fleet/instances?image=appserver&version=-1", 400, "version"},
		{"/ui/overage?max_age=soon", 400, "max_age"},
		{"/ui/exposure?advisory=NO-SUCH-1", 404, "NO-SUCH-1"},
		{"/ui/runs/999", 404, "999"},
		{"/ui/trends?severity=dire", 400, "severity"},
		{"/ui/services/nosuch", 404, "nosuch"},
		{"/ui/nowhere", 404, "no dashboard page"},
	} {
		resp, body := get(t, c, f, tc.path)
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s: status %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
		checkPage(t, tc.path, resp, body)
		if !strings.Contains(body, tc.want) {
			t.Errorf("GET %s: error page lacks %q:\n%s", tc.path, tc.want, body)
		}
	}
}

func TestSignIn(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client(t)

	// Without a session, pages send the visitor to sign in, and back.
	resp, _ := get(t, c, f, "/ui/fleet?env=prod")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/signin?next=%2Fui%2Ffleet%3Fenv%3Dprod" {
		t.Fatalf("unsigned /ui/fleet: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := get(t, c, f, "/ui/signin?next=%2Fui%2Ffleet%3Fenv%3Dprod")
	checkPage(t, "/ui/signin", resp, body)
	if !strings.Contains(body, `value="/ui/fleet?env=prod"`) {
		t.Errorf("sign-in page does not carry next")
	}

	// A wrong token, an agent token, an empty one.
	for _, tc := range []struct {
		secret string
		status int
		want   string
	}{
		{"kiln_notatoken", 401, "unknown, expired or revoked"},
		{f.agent, 403, "role agent"},
		{"", 400, "no token given"},
	} {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/ui/signin", strings.NewReader("token="+tc.secret))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
			t.Errorf("sign in with %q: %d, want %d with %q", tc.secret, resp.StatusCode, tc.status, tc.want)
		}
		if tc.secret != "" && strings.Contains(string(b), tc.secret) {
			t.Errorf("sign-in page repeats the token it was given")
		}
		if len(resp.Cookies()) > 0 {
			t.Errorf("failed sign-in set a cookie")
		}
	}

	// The right one: a session cookie, HttpOnly and SameSite=Strict; not
	// Secure on plain HTTP.
	resp = f.signIn(t, c, f.viewer, "https://evil.example/")
	if loc := resp.Header.Get("Location"); loc != "/ui/fleet" {
		t.Errorf("sign in with an off-site next went to %q; want /ui/fleet", loc)
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "kiln_session" {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Secure {
		t.Fatalf("session cookie %+v; want HttpOnly, SameSite=Strict, not Secure", cookie)
	}
	if cookie.Value == f.viewer {
		t.Errorf("the session cookie is the token itself")
	}
	if resp, _ := get(t, c, f, "/ui/fleet"); resp.StatusCode != 200 {
		t.Fatalf("signed in /ui/fleet: %d", resp.StatusCode)
	}

	// A sign-out posted from another site is refused; from the page it works.
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/ui/signout", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site sign-out: %d, want 403", resp.StatusCode)
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if resp, err = c.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-out: %d, want 303", resp.StatusCode)
	}
	if resp, _ := get(t, c, f, "/ui/fleet"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after sign-out /ui/fleet: %d, want a redirect to sign in", resp.StatusCode)
	}

	// A cross-site sign-in form is refused too (login CSRF).
	req, _ = http.NewRequest(http.MethodPost, f.srv.URL+"/ui/signin", strings.NewReader("token="+f.viewer))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, err = c.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) > 0 {
		t.Errorf("cross-site sign-in: %d with %d cookies, want 403 and none", resp.StatusCode, len(resp.Cookies()))
	}
}

func TestSecureCookieUnderTLS(t *testing.T) {
	f := newFixture(t, fixtureOpts{secure: true})
	resp := f.signIn(t, f.client(t), f.viewer, "")
	for _, ck := range resp.Cookies() {
		if ck.Name == "kiln_session" && ck.Secure {
			return
		}
	}
	t.Fatalf("with Secure set the session cookie is not Secure: %v", resp.Cookies())
}

func TestInsecureListenBanner(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		f := newFixture(t, fixtureOpts{insecure: insecure})
		c := f.client(t)
		_, body := get(t, c, f, "/ui/signin")
		if got := strings.Contains(body, `id="insecure-banner"`); got != insecure {
			t.Errorf("insecure-listen %v: banner on the sign-in page %v", insecure, got)
		}
		f.signIn(t, c, f.viewer, "")
		_, body = get(t, c, f, "/ui/fleet")
		if got := strings.Contains(body, `id="insecure-banner"`); got != insecure {
			t.Errorf("insecure-listen %v: banner on the fleet report %v", insecure, got)
		}
	}
}

// TestMount checks that the API, health and the redirect to the dashboard
// share one handler, and that the session cookie also works for the API
// (the dashboard's cookie is the API's session).
func TestMount(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client(t)
	if resp, _ := get(t, c, f, "/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /: %d to %q, want 303 to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := get(t, c, f, "/healthz"); resp.StatusCode != 200 || !strings.Contains(body, "ok") {
		t.Errorf("GET /healthz: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, c, f, "/api/v1/fleet/report"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API without credentials: %d, want 401", resp.StatusCode)
	}
	f.signIn(t, c, f.viewer, "")
	if resp, _ := get(t, c, f, "/ui/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/fleet" {
		t.Errorf("GET /ui/: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := get(t, c, f, "/api/v1/fleet/report")
	var rep struct {
		Instances int `json:"instances"`
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &rep) != nil || rep.Instances != 14 {
		t.Errorf("API with the session cookie: %d %s", resp.StatusCode, body)
	}
}

// Report tables are paged; the totals under them count every row.
func TestReportPaging(t *testing.T) {
	f := newFixture(t, fixtureOpts{rowsPerPage: 2})
	c := f.client(t)
	f.signIn(t, c, f.viewer, "/ui/fleet")
	rows := regexp.MustCompile(`<tr data-image="`)
	pages := []struct {
		path  string
		rows  int
		shown string
		want  []string
	}{
		{"/ui/fleet", 2, "1–2", []string{`id="total-instances">14<`, `<span id="total">6</span>`, `href="/ui/fleet?offset=2" rel="next"`}},
		{"/ui/fleet?offset=4", 2, "5–6", []string{`id="total-instances">14<`, `href="/ui/fleet?offset=2" rel="prev"`}},
		// Past the end (the fleet shrank since the link was made): the last page.
		{"/ui/fleet?offset=40", 2, "5–6", nil},
		{"/ui/fleet?env=prod&offset=2", 1, "3–3", []string{`id="total-instances">7<`, `href="/ui/fleet?env=prod" rel="prev"`}},
		{"/ui/overage?max_age=100d", 2, "1–2", []string{`id="overage-total">11<`, `rel="next"`}},
		{"/ui/stale", 2, "1–2", []string{`id="stale-instances">6<`}},
		{"/ui/exposure?advisory=KILN-TEST-1&offset=2", 1, "3–3", []string{`id="exposure-total">10<`, `rel="prev"`}},
	}
	for _, p := range pages {
		resp, body := get(t, c, f, p.path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d\n%s", p.path, resp.StatusCode, body)
			continue
		}
		if n := len(rows.FindAllString(body, -1)); n != p.rows {
			t.Errorf("GET %s: %d rows, want %d", p.path, n, p.rows)
		}
		if w := `<span id="shown">` + p.shown + `</span>`; !strings.Contains(body, w) {
			t.Errorf("GET %s: page lacks %q", p.path, w)
		}
		for _, w := range p.want {
			if !strings.Contains(body, strings.ReplaceAll(w, "&", "&amp;")) {
				t.Errorf("GET %s: page lacks %q", p.path, w)
			}
		}
	}
	if resp, body := get(t, c, f, "/ui/fleet?offset=two"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "offset") {
		t.Errorf("bad offset: status %d, want 400 naming the parameter\n%s", resp.StatusCode, body)
	}
}
