package web_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/rollout"
	"github.com/kiln-project/kiln/store"
	"github.com/kiln-project/kiln/web"
)

// testClock is the store's clock: seeding moves it back in time so some
// versions are old; afterwards it follows the wall clock.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) set(offset time.Duration) {
	c.mu.Lock()
	c.offset = offset
	c.mu.Unlock()
}

// fixture is a real handler stack (SQLite store in a temp dir, the API and
// the dashboard, mounted as kiln serve mounts them) on 127.0.0.1:0, with a
// small fleet and tokens.
type fixture struct {
	db     *store.DB
	srv    *httptest.Server
	viewer string // secret of a viewer token
	agent  string // secret of an agent token
}

type fixtureOpts struct {
	insecure    bool
	secure      bool
	rowsPerPage int
	// autoRefresh, when set, is the dashboard's AutoRefresh.
	autoRefresh func(ctx context.Context) ([]web.AutoRefresh, error)
	// follow, when set, gives the dashboard kiln serve's real follower
	// status on the fixture's store (as cmd/kiln wires it).
	follow bool
}

func newFixture(t *testing.T, opts fixtureOpts) *fixture {
	t.Helper()
	ctx := kiln.WithActor(context.Background(), "local:test")
	clock := &testClock{}
	logger := slog.New(slog.DiscardHandler)
	db, err := store.Open(ctx, "", t.TempDir(), logger, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	seed(t, ctx, db, clock)

	f := &fixture{db: db}
	_, f.viewer, err = db.CreateToken(ctx, &kiln.NewToken{Name: "dash-viewer", Role: kiln.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	_, f.agent, err = db.CreateToken(ctx, &kiln.NewToken{Name: "dash-agent", Role: kiln.RoleAgent})
	if err != nil {
		t.Fatal(err)
	}
	var follow func(ctx context.Context, s *kiln.Service) (*web.FollowState, error)
	if opts.follow {
		fol := &rollout.Follower{Services: db, Rollouts: db, Channels: db, Pauses: db, Clock: clock.now}
		follow = func(ctx context.Context, s *kiln.Service) (*web.FollowState, error) {
			st, err := fol.Status(ctx, s)
			if err != nil {
				return nil, err
			}
			return &web.FollowState{State: st.State, Detail: st.Detail, Until: st.Until}, nil
		}
	}
	dash, err := web.New(web.Config{Registry: db, Inventory: db, Fleet: db, Advisories: db, AdvisorySources: db, Runs: db, Tokens: db, Channels: db, Logger: logger, InsecureListen: opts.insecure, Secure: opts.secure, Version: "test", RowsPerPage: opts.rowsPerPage,
		History: db, Services: db, Rollouts: db, Timeline: db, Reproductions: db, Pauses: db, AutoRefresh: opts.autoRefresh, FollowStatus: follow})
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := api.New(api.Config{Logger: logger, Version: "test"}.WithStores(db))
	f.srv = httptest.NewServer(web.Mount(dash, apiSrv))
	t.Cleanup(f.srv.Close)
	return f
}

// seed records three image lines (appserver built on basic-linux), twelve
// instances in three environments plus one on a version the registry does
// not know, an advisory fixed in basic-linux-2 and appserver-3, a 90-day
// age limit for prod, and one finished pipeline run.
func seed(t *testing.T, ctx context.Context, db *store.DB, clock *testClock) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	day := 24 * time.Hour
	for _, name := range []string{"basic-linux", "appserver", "container-node"} {
		must(db.CreateImage(ctx, &kiln.Image{Name: name, Description: name + " image line"}))
	}
	version := func(age time.Duration, image string, status kiln.Status, prov kiln.Provenance) {
		t.Helper()
		clock.set(-age)
		if prov.Method == "" {
			prov.Method = kiln.MethodFresh
		}
		prov.BuiltBy = "test"
		prov.Sources = []kiln.Source{{Kind: kiln.SourceOrigin, Ref: "bookworm@http://deb.debian.org/debian"}}
		prov.Packages = []kiln.Package{{Name: "libssl3", Version: "3.0.11-1~deb12u2", Architecture: "amd64", Source: "openssl"}}
		v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: image, Provenance: prov})
		must(err)
		for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
			if status.Rank() < st.Rank() {
				break
			}
			_, err := db.SetStatus(ctx, v.Ref(), st, "seed")
			must(err)
		}
	}
	ref := func(image string, n int) *kiln.VersionRef { return &kiln.VersionRef{Image: image, Number: n} }
	version(200*day, "basic-linux", kiln.StatusReady, kiln.Provenance{})
	version(199*day, "appserver", kiln.StatusReady, kiln.Provenance{Base: ref("basic-linux", 1)})
	version(150*day, "appserver", kiln.StatusReady, kiln.Provenance{Method: kiln.MethodReheat, Parent: ref("appserver", 1), Base: ref("basic-linux", 1)})
	version(120*day, "container-node", kiln.StatusReady, kiln.Provenance{Base: ref("basic-linux", 1)})
	version(30*day, "basic-linux", kiln.StatusReady, kiln.Provenance{})
	version(10*day, "appserver", kiln.StatusCandidate, kiln.Provenance{Base: ref("basic-linux", 2)})
	clock.set(0)

	var insts []*kiln.Instance
	add := func(image string, n int, env string, count int) {
		for range count {
			insts = append(insts, &kiln.Instance{Version: kiln.VersionRef{Image: image, Number: n}, Environment: env,
				LaunchedAt: time.Now().Add(-5 * day), Address: fmt.Sprintf("10.0.0.%d", len(insts)+1)})
		}
	}
	add("basic-linux", 1, "prod", 3)
	add("basic-linux", 1, "staging", 1)
	add("basic-linux", 2, "prod", 2)
	add("appserver", 1, "prod", 2)
	add("appserver", 2, "staging", 4)
	add("container-node", 1, "dev", 1)
	must(db.RegisterInstances(ctx, insts, kiln.RegisterOptions{}))
	must(db.RegisterInstances(ctx, []*kiln.Instance{{ID: "stray-1", Version: kiln.VersionRef{Image: "appserver", Number: 9}, Environment: "dev"}},
		kiln.RegisterOptions{AllowUnknown: true}))

	_, err := db.PutAdvisories(ctx, []*kiln.Advisory{{ID: "KILN-TEST-1", Source: kiln.AdvisoryManual,
		Summary: "openssl fix baked into new versions", FixedIn: []kiln.VersionRef{*ref("basic-linux", 2), *ref("appserver", 3)}}})
	must(err)
	must(db.SetAgePolicy(ctx, &kiln.AgePolicy{Environment: "prod", MaxAge: kiln.AgeOf(90 * day)}))

	run, _, err := db.EnqueueRun(ctx, &kiln.NewRun{Image: "appserver", Estate: "/srv/estate", Trigger: "manual",
		Stages: []kiln.Stage{{Name: "build", Kind: kiln.StageBuild}, {Name: "test", Kind: kiln.StageTest}}})
	must(err)
	claimed, err := db.ClaimRun(ctx, "test:1")
	must(err)
	if claimed == nil || claimed.ID != run.ID {
		t.Fatalf("claim run: got %v, want run %d", claimed, run.ID)
	}
	now := time.Now()
	must(db.UpdateStage(ctx, run.ID, "test:1", 0, kiln.Stage{Name: "build", Kind: kiln.StageBuild, Status: kiln.StagePassed,
		StartedAt: now, FinishedAt: now, Detail: "built appserver-3"}, ref("appserver", 3)))
	must(db.AppendRunLog(ctx, run.ID, "build", "mmdebstrap bookworm <done>\n"))
	must(db.UpdateStage(ctx, run.ID, "test:1", 1, kiln.Stage{Name: "test", Kind: kiln.StageTest, Status: kiln.StagePassed,
		StartedAt: now, FinishedAt: now, Detail: "3 of 3 tests passed"}, nil))
	must(db.FinishRun(ctx, run.ID, "test:1", kiln.RunSucceeded, ""))
}

// client returns an HTTP client that keeps cookies and does not follow
// redirects, so tests see them.
func (f *fixture) client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// signIn posts the sign-in form with secret and returns the response.
func (f *fixture) signIn(t *testing.T, c *http.Client, secret, next string) *http.Response {
	t.Helper()
	form := url.Values{"token": {secret}, "next": {next}}
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/ui/signin", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// What a browser sends for a form on the page itself.
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}
