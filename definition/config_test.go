package definition

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigBlock(t *testing.T) {
	dir := writeEstate(t, map[string]string{"images.kiln.hcl": twoImages, "pipeline.kiln.hcl": `
pipeline "web" {
  images       = ["appserver"]
  environments = ["dev", "prod"]
  environment "prod" {
    gate = "approval"
    config {
      file "banner.txt" { source = "config/prod-banner.txt" }
      settings = { LOG_LEVEL = "info" }
      secret "db-password" { file = "/etc/kiln/secrets/db" }
      secret "api-key" { env = "API_KEY" }
      agent {
        server     = "http://127.0.0.1:8088"
        token_file = "/etc/kiln/agent-token"
      }
    }
  }
}
`})
	if err := os.MkdirAll(filepath.Join(dir, "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config/prod-banner.txt"), []byte("prod\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	est, diags := Load(dir, Options{})
	if diags.HasErrors() {
		t.Fatal(FormatDiagnostics(diags))
	}
	if c := est.ConfigFor("appserver", "dev"); c != nil {
		t.Errorf("dev has a config: %+v", c)
	}
	if c := est.ConfigFor("basic-linux", "prod"); c != nil {
		t.Errorf("basic-linux (another pipeline) has a config: %+v", c)
	}
	c := est.ConfigFor("appserver", "prod")
	if c == nil {
		t.Fatal("no prod config")
	}
	if len(c.Files) != 1 || c.Files[0].Name != "banner.txt" || !strings.HasSuffix(c.Files[0].Path, "config/prod-banner.txt") || !strings.HasPrefix(c.Files[0].Digest, "sha256:") {
		t.Errorf("files = %+v", c.Files)
	}
	if c.Settings["LOG_LEVEL"] != "info" {
		t.Errorf("settings = %v", c.Settings)
	}
	if len(c.Secrets) != 2 || c.Secrets[0].File != "/etc/kiln/secrets/db" || c.Secrets[1].Env != "API_KEY" {
		t.Errorf("secrets = %+v", c.Secrets)
	}
	if c.Agent == nil || c.Agent.Server != "http://127.0.0.1:8088" || c.Agent.TokenFile != "/etc/kiln/agent-token" {
		t.Errorf("agent = %+v", c.Agent)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, config, want string }{
		{"missing source", `file "a" { source = "nope.txt" }`, `pipeline.kiln.hcl:7:21: error: File not found`},
		{"source outside", `file "a" { source = "../x" }`, `Path outside the estate`},
		{"bad name", `file "a/b" { source = "images.kiln.hcl" }`, `pipeline.kiln.hcl:7:6: error: Invalid name`},
		{"reserved name", `secret "kiln-agent" { env = "X" }`, `kiln's own credential name`},
		{"duplicate", "file \"a\" { source = \"images.kiln.hcl\" }\nsecret \"a\" { env = \"X\" }", `pipeline.kiln.hcl:8:8: error: Duplicate name`},
		{"bad setting", `settings = { "log-level" = "x" }`, `Invalid setting`},
		{"multiline setting", `settings = { A = "x\ny" }`, `deliver multi-line values as a file`},
		{"secret relative", `secret "db" { file = "secrets/db" }`, `Secret file not absolute`},
		{"secret both", `secret "db" {
  file = "/x"
  env  = "X"
}`, `Two secret sources`},
		{"secret none", `secret "db" {}`, `Secret without source`},
		{"agent url", `agent { server = "kiln:8088" }`, `Invalid agent server`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeEstate(t, map[string]string{"images.kiln.hcl": twoImages, "pipeline.kiln.hcl": `
pipeline "web" {
  images       = ["appserver"]
  environments = ["prod"]
  environment "prod" {
    config {
` + tc.config + `
    }
  }
}
`})
			_, diags := Load(dir, Options{})
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			if got := FormatDiagnostics(diags); !strings.Contains(got, tc.want) {
				t.Errorf("diagnostics:\n%s\nwant %q", got, tc.want)
			}
		})
	}
}
