package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func wantIn(t *testing.T, what, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Errorf("%s lacks %q:\n%s", what, s, out)
		}
	}
}

// A service's follow mode and rollout policy are set with flags on
// `kiln service create` and `kiln service set`, and shown by `kiln
// service show` with its follow state and next window.
func TestServicePolicyFlags(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "image", "create", "appserver")
	mustRun(t, dir, "service", "create", "web", "--image", "appserver", "--env", "prod", "--port", "127.0.0.1:18601", "--no-start",
		"--window", "mon-fri 02:00-05:00 Europe/Berlin", "--limit", "2/24h", "--metrics-port", "18602",
		"--gate-prometheus", "http://127.0.0.1:9090", "--gate-query", `sum(rate(kiln_frontend_errors_total{service="web"}[1m]))`,
		"--gate-max", "0.01", "--gate-for", "30s")
	show := mustRun(t, dir, "service", "show", "web")
	wantIn(t, "service show", show, "follow: the prod channel of appserver", "no-channel: the prod channel holds no version of appserver yet",
		"window: mon,tue,wed,thu,fri 02:00-05:00 Europe/Berlin (", "limit: 2 rollouts per 24h in prod",
		`gate: sum(rate(kiln_frontend_errors_total{service="web"}[1m])) ≤ 0.01 for 30s (http://127.0.0.1:9090)`, "metrics: http://127.0.0.1:18602/metrics")
	if !strings.Contains(show, "(open now)") && !strings.Contains(show, "(next opens ") {
		t.Errorf("show names no next window:\n%s", show)
	}

	mustRun(t, dir, "service", "set", "web", "--follow", "none", "--no-gate", "--max-surge", "1", "--bake-time", "1s")
	show = mustRun(t, dir, "service", "show", "web")
	wantIn(t, "service show after set", show, "follow: none", "bake 1s", "limit: 2 rollouts")
	if strings.Contains(show, "gate:") {
		t.Errorf("the gate was removed but show still has it:\n%s", show)
	}
	if list := mustRun(t, dir, "service", "list"); !strings.Contains(list, "none") {
		t.Errorf("service list shows no follow mode:\n%s", list)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"service", "set", "web", "--window", "mon 2-5 UTC"}, `window time "2" is not HH:MM`},
		{[]string{"service", "set", "web", "--limit", "0/1h"}, "allows none"},
		{[]string{"service", "set", "web", "--follow", "sometimes"}, `follow "sometimes" is not known`},
		{[]string{"service", "set", "web", "--gate-query", "up"}, "--gate-prometheus"},
	} {
		_, errs, code := run(t, dir, tc.args...)
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("kiln %s: exit %d, %s; want exit 1 saying %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
}

// `kiln estate add` records the estate's service blocks; `kiln estate
// apply` records them again after the files changed; a service created
// outside the estate keeps working as before.
func TestEstateServices(t *testing.T) {
	dir := t.TempDir()
	estate := t.TempDir()
	write := func(window string) {
		t.Helper()
		src := `image "appserver" {
  debian { suite = "bookworm" }
}
service "api" {
  image       = "appserver"
  environment = "prod"
  replicas    = 2
  port        = 18611
  window {
    days  = "sat"
    hours = "` + window + `"
    zone  = "UTC"
  }
}
`
		if err := os.WriteFile(filepath.Join(estate, "estate.kiln.hcl"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("01:00-03:00")
	mustRun(t, dir, "image", "create", "appserver")
	mustRun(t, dir, "service", "create", "manual", "--image", "appserver", "--env", "prod", "--port", "18612", "--no-start")
	mustRun(t, dir, "estate", "add", "ops", estate)
	wantIn(t, "show api", mustRun(t, dir, "service", "show", "api"), "2 × appserver in prod", "defined by estate ops", "window: sat 01:00-03:00 UTC")
	write("04:00-06:00")
	wantIn(t, "estate apply", mustRun(t, dir, "estate", "apply", "ops"), "service api updated")
	wantIn(t, "show api", mustRun(t, dir, "service", "show", "api"), "window: sat 04:00-06:00 UTC")
	manual := mustRun(t, dir, "service", "show", "manual")
	wantIn(t, "show manual", manual, "follow: the prod channel of appserver", "window: any time")
	if strings.Contains(manual, "estate") {
		t.Errorf("a service created by hand names an estate:\n%s", manual)
	}
}
