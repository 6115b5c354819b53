package definition

import (
	"strings"
	"testing"
)

func TestPipelineTestPlatform(t *testing.T) {
	est, diags := Load(writeEstate(t, map[string]string{"images.kiln.hcl": twoImages, "pipeline.kiln.hcl": `
pipeline "vms" {
  images = ["appserver"]
  test { platform = "vm" }
}
`}), Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := est.PipelineFor("appserver").Test.Platform; got != "vm" {
		t.Fatalf("appserver tests on %q, want vm", got)
	}
	if got := est.PipelineFor("basic-linux").Test.Platform; got != "" {
		t.Fatalf("basic-linux tests on %q, want the default", got)
	}
	for _, tc := range []struct{ body, want string }{
		{`pipeline "p" {
  test { platform = "xen" }
}`, `pipeline.kiln.hcl:2:21: error: Unknown platform; platform "xen" is not one kiln runs instances on; use local or vm.`},
		{`pipeline "p" {
  test { platform = "vm" }
  test { platform = "local" }
}`, `pipeline.kiln.hcl:3:3: error: Duplicate test block`},
		{`pipeline "p" {
  test { host = "vm" }
}`, `Unsupported argument`},
	} {
		_, diags := Load(writeEstate(t, map[string]string{"images.kiln.hcl": twoImages, "pipeline.kiln.hcl": tc.body}), Options{})
		if got := FormatDiagnostics(diags); !strings.Contains(got, tc.want) {
			t.Errorf("%s:\n got %s\nwant %q", tc.body, got, tc.want)
		}
	}
}
