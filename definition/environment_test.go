package definition

import (
	"strings"
	"testing"
)

func TestEnvironmentRefresh(t *testing.T) {
	dir := writeEstate(t, map[string]string{"images.kiln.hcl": twoImages, "environments.kiln.hcl": `
environment "prod" {
  refresh {
    auto         = true
    min_severity = "critical"
    include      = ["no-dsa"]
  }
}
environment "staging" {
  refresh { auto = true }
}
environment "dev" {}
`})
	est, diags := Load(dir, Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	auto := est.AutoRefresh()
	if len(auto) != 2 || auto[0].Name != "prod" || auto[1].Name != "staging" {
		t.Fatalf("auto refresh: %+v", auto)
	}
	if p := auto[0].Refresh; p.MinSeverity != "critical" || strings.Join(p.Include, ",") != "no-dsa" || p.Range.Start.Line != 3 {
		t.Errorf("prod: %+v", p)
	}
	if p := auto[1].Refresh; p.MinSeverity != DefaultRefreshSeverity || len(p.Include) != 0 {
		t.Errorf("staging defaults: %+v", p)
	}
	if est.Environments["dev"].Refresh.Auto {
		t.Error("dev has no refresh block but is automatic")
	}
}

func TestEnvironmentRefreshErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`environment "prod" {
  refresh { auto = "yes please" }
}`, `environments.kiln.hcl:2:20: error: Incorrect attribute type`},
		{`environment "prod" {
  refresh {
    auto = true
    min_severity = "urgent"
  }
}`, `environments.kiln.hcl:4:20: error: Invalid severity; min_severity "urgent" is not known`},
		{`environment "prod" {
  refresh {
    auto    = true
    include = ["maybe"]
  }
}`, `environments.kiln.hcl:4:15: error: Invalid include; include "maybe" is not a finding state`},
		{`environment "prod" {
  refresh { auto = true }
  refresh { auto = false }
}`, `environments.kiln.hcl:3:3: error: Duplicate refresh block`},
		{`environment "prod" {}
environment "prod" {}`, `environments.kiln.hcl:2:13: error: Duplicate environment; environment "prod" is already declared at environments.kiln.hcl:1`},
		{`environment "Prod!" {}`, `environments.kiln.hcl:1:13: error: Invalid environment name`},
		{`environment "prod" {
  refresh { autopilot = true }
}`, `environments.kiln.hcl:2:13: error: Unsupported argument`},
	} {
		dir := writeEstate(t, map[string]string{"images.kiln.hcl": twoImages, "environments.kiln.hcl": c.body})
		_, diags := Load(dir, Options{})
		got := FormatDiagnostics(diags)
		if !diags.HasErrors() || !strings.Contains(got, c.want) {
			t.Errorf("%s\ngot  %s\nwant %s", c.body, got, c.want)
		}
	}
}
