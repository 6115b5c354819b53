package definition

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeEstate(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const twoImages = `
image "basic-linux" {
  debian { suite = "bookworm" }
}
image "appserver" {
  base = image.basic-linux
}
`

func TestPipelineBlock(t *testing.T) {
	dir := writeEstate(t, map[string]string{"images.kiln.hcl": twoImages, "pipeline.kiln.hcl": `
pipeline "estate" {
  environments = ["dev", "staging", "prod"]
  schedule     = "0 4 * * 1"
  scan {
    on_affected  = "warn"
    min_severity = "high"
  }
  environment "prod" { gate = "approval" }
}
pipeline "base" {
  images = ["basic-linux"]
  stages = ["build", "test"]
  on     = ["packages"]
}
`})
	est, diags := Load(dir, Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	app := est.PipelineFor("appserver")
	want := []Environment{{Name: "dev", Gate: "auto"}, {Name: "staging", Gate: "auto"}, {Name: "prod", Gate: "approval"}}
	if app.Name != "estate" || !cmp.Equal(app.Environments, want) || !cmp.Equal(app.Scan, ScanPolicy{OnAffected: "warn", MinSeverity: "high"}) ||
		app.Schedule != "0 4 * * 1" || !cmp.Equal(app.Stages, DefaultStages) || !cmp.Equal(app.On, DefaultTriggers) {
		t.Fatalf("appserver pipeline: %+v", app)
	}
	base := est.PipelineFor("basic-linux")
	if base.Name != "base" || !cmp.Equal(base.Stages, []string{"build", "test"}) || len(base.Environments) != 0 || base.Scan.OnAffected != "fail" {
		t.Fatalf("basic-linux pipeline: %+v", base)
	}
}

func TestPipelineDefault(t *testing.T) {
	est, diags := Load(writeEstate(t, map[string]string{"images.kiln.hcl": twoImages}), Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if p := est.PipelineFor("appserver"); p.Name != "default" || !cmp.Equal(p.Stages, DefaultStages) {
		t.Fatalf("default pipeline: %+v", p)
	}
}

func TestPipelineErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`pipeline "p" { schedule = "every monday" }`, `pipeline.kiln.hcl:1:27: error: Invalid schedule`},
		{`pipeline "p" { stages = ["test", "build"] }`, "Pipeline must start with build"},
		{`pipeline "p" { stages = ["build", "deploy"] }`, `"deploy" is not a stage`},
		{`pipeline "p" { on = ["tuesday"] }`, "Unknown trigger"},
		{`pipeline "p" { images = ["nope"] }`, `names image "nope"`},
		{`pipeline "p" {}
pipeline "q" {}`, "both cover every image"},
		{`pipeline "p" { images = ["appserver"] }
pipeline "q" { images = ["appserver"] }`, "Image in two pipelines"},
		{`pipeline "p" {
  environments = ["dev"]
  environment "prod" { gate = "approval" }
}`, "not in environments"},
		{`pipeline "p" {
  environments = ["prod"]
  environment "prod" { gate = "manual" }
}`, "Invalid gate"},
		{`pipeline "p" {
  scan { on_affected = "ignore" }
}`, "Invalid scan policy"},
		{`pipeline "p" {
  scan { min_severity = "urgent" }
}`, "Invalid severity"},
		{`pipeline "p" {
  scan { include = ["no-dsa", "minor"] }
}`, `pipeline.kiln.hcl:2:20: error: Invalid scan include; include "minor" is not a finding state`},
	} {
		_, diags := Load(writeEstate(t, map[string]string{"images.kiln.hcl": twoImages, "pipeline.kiln.hcl": tc.body}), Options{})
		if got := FormatDiagnostics(diags); !strings.Contains(got, tc.want) {
			t.Errorf("%s:\n got %s\nwant %q", tc.body, got, tc.want)
		}
	}
}

func TestExampleEstatePipelines(t *testing.T) {
	est, diags := Load("../examples/estate", Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if p := est.PipelineFor("basic-linux"); p.Name != "base" || len(p.Environments) != 0 {
		t.Fatalf("basic-linux: %+v", p)
	}
	if p := est.PipelineFor("container-node"); p.Name != "estate" || p.Environments[2].Gate != "approval" {
		t.Fatalf("container-node: %+v", p)
	}
	// dev and prod give appserver's instances their own banner and agent
	// token (--var kiln_server and secrets move them); staging gives none.
	est, diags = Load("../examples/estate", Options{Vars: map[string]string{"kiln_server": "http://127.0.0.1:18080", "secrets": "/srv/s"}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if c := est.ConfigFor("appserver", "staging"); c != nil {
		t.Errorf("staging config %+v, want none", c)
	}
	banners := map[string]string{}
	for _, env := range []string{"dev", "prod"} {
		c := est.ConfigFor("appserver", env)
		if c == nil || len(c.Files) != 1 || c.Files[0].Name != "banner.txt" || c.Agent == nil {
			t.Fatalf("%s config %+v: want banner.txt and an agent", env, c)
		}
		if c.Agent.Server != "http://127.0.0.1:18080" || c.Agent.TokenFile != "/srv/s/agent-"+env+".token" {
			t.Errorf("%s agent %+v", env, c.Agent)
		}
		b, err := os.ReadFile(c.Files[0].Path)
		if err != nil {
			t.Fatal(err)
		}
		banners[env] = string(b)
	}
	if banners["dev"] == banners["prod"] || !strings.HasPrefix(banners["prod"], "Production") {
		t.Errorf("banners %q", banners)
	}
}
