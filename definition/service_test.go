package definition

import (
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

func TestServiceBlock(t *testing.T) {
	dir := writeEstate(t, map[string]string{"images.kiln.hcl": twoImages, "services.kiln.hcl": `
service "web" {
  image        = "appserver"
  environment  = "prod"
  replicas     = 3
  port         = "127.0.0.1:18080"
  metrics_port = 19080
  health       = "http:/healthz"
  max_surge    = 2
  min_healthy  = 66
  bake_time    = "10s"

  window {
    days  = "mon-fri"
    hours = "02:00-05:00"
    zone  = "Europe/Berlin"
  }
  limit {
    rollouts = 2
    per      = "24h"
  }
  gate {
    prometheus = "http://127.0.0.1:9090"
    query      = "sum(rate(kiln_frontend_errors_total{service=\"web\"}[1m]))"
    max        = 0.01
    for        = "30s"
  }
}
service "batch" {
  image       = "basic-linux"
  environment = "staging"
  port        = 18081
  follow      = "none"
}
`})
	est, diags := Load(dir, Options{})
	if diags.HasErrors() {
		t.Fatal(FormatDiagnostics(diags))
	}
	web := est.Services["web"].Service
	if web.Replicas != 3 || web.Listen != "127.0.0.1:18080" || web.MetricsListen != "127.0.0.1:19080" || web.MaxSurge != 2 ||
		web.MinHealthyPercent != 66 || web.BakeTime != 10*time.Second || web.Follow != kiln.FollowChannel || web.Health.String() != "http:/healthz" {
		t.Errorf("web = %+v", web)
	}
	if w := web.Policy.Window; w == nil || w.String() != "mon,tue,wed,thu,fri 02:00-05:00 Europe/Berlin" {
		t.Errorf("window %v", w)
	}
	if l := web.Policy.Limit; l == nil || l.Count != 2 || l.Per != 24*time.Hour {
		t.Errorf("limit %v", l)
	}
	if g := web.Policy.Gate; g == nil || g.Max != 0.01 || g.For != 30*time.Second || !strings.Contains(g.Query, `service="web"`) {
		t.Errorf("gate %v", g)
	}
	if b := est.Services["batch"].Service; b.Follow != kiln.FollowNone || b.Replicas != 1 || !b.Policy.IsZero() || b.BakeTime != kiln.DefaultBakeTime && b.BakeTime != 0 {
		t.Errorf("batch = %+v", b)
	}
}

func TestServiceErrors(t *testing.T) {
	base := `
  image = "appserver"
  environment = "prod"
  port = 18080
`
	for _, tc := range []struct{ body, want string }{
		{`service "web" { ` + base + ` follow = "sometimes" }`, `services.kiln.hcl:5:11: error: Invalid service; follow "sometimes" is not known`},
		{`service "web" { ` + base + ` replicas = 0 }`, `services.kiln.hcl:5:13: error: Invalid number`},
		{`service "web" {
  image = "nope"
  environment = "prod"
  port = 18080
}`, `services.kiln.hcl:1:1: error: Unknown image; service "web" runs image "nope"`},
		{`service "web" { ` + base + `
  window {
    hours = "2-5"
    zone = "UTC"
  }
}`, `services.kiln.hcl:7:13: error: Invalid window; window time "2" is not HH:MM`},
		{`service "web" { ` + base + `
  window {
    hours = "02:00-05:00"
    zone = "Mars/Olympus"
  }
}`, `services.kiln.hcl:8:12: error: Invalid window; time zone "Mars/Olympus" is not known`},
		{`service "web" { ` + base + `
  limit {
    rollouts = 1
    per = "1s"
  }
}`, `services.kiln.hcl:8:11: error: Invalid limit`},
		{`service "web" { ` + base + `
  gate {
    prometheus = "127.0.0.1:9090"
    query = "up"
    max = 1
  }
}`, `services.kiln.hcl:7:18: error: Invalid gate; "127.0.0.1:9090" is not a Prometheus server's`},
		{`service "web" { ` + base + `}
service "api" { ` + base + `}`, `Address in use`},
		{`service "Web" { ` + base + `}`, `services.kiln.hcl:1:9: error: Invalid service name`},
		{`service "web" { ` + base + ` metrics_port = "10.0.0.1:9" }`, `Invalid service; "10.0.0.1:9" is not a loopback`},
	} {
		_, diags := Load(writeEstate(t, map[string]string{"images.kiln.hcl": twoImages, "services.kiln.hcl": tc.body}), Options{})
		if got := FormatDiagnostics(diags); !strings.Contains(got, tc.want) {
			t.Errorf("%s:\n got %s\nwant %q", tc.body, got, tc.want)
		}
	}
}
