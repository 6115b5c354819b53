package definition_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/definition"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// estateCases are the estates under testdata/estates, with the options each
// is loaded with. Every directory there must be listed.
var estateCases = map[string]definition.Options{
	"good-full": {},
	"good-vars": {
		Vars:     map[string]string{"suite": "trixie", "components": `["main", "contrib"]`},
		VarFiles: []string{"testdata/estates/good-vars/extra.vars.hcl"},
		Env:      []string{"PATH=/bin", "KILN_VAR_variant=apt", "KILN_VAR_team=from-env", "KILN_VAR_undeclared=ignored"},
	},
	"warn-only":      {},
	"bad-syntax":     {},
	"bad-schema":     {},
	"bad-origin":     {},
	"bad-cycle":      {},
	"bad-paths":      {},
	"bad-values":     {},
	"bad-reheat":     {},
	"bad-duplicates": {},
	"bad-variables": {
		Vars:     map[string]string{"typed": "[1", "not_declared": "x"},
		VarFiles: []string{"testdata/estates/no-such.vars.hcl"},
	},
	"bad-shell":      {},
	"bad-volatile":   {},
	"good-test-vars": {},
	"bad-test-vars":  {},
	"no-images":      {},
	"bad-formats":    {},
	"bad-kernel":     {},
	"good-formats":   {},
}

// TestLoadGolden loads each estate and compares the diagnostics, and for
// estates that load, a summary of what was loaded, with
// testdata/golden/NAME.golden. Run with -update to rewrite them.
func TestLoadGolden(t *testing.T) {
	entries, err := os.ReadDir("testdata/estates")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := estateCases[e.Name()]; e.IsDir() && !ok {
			t.Errorf("testdata/estates/%s is not listed in estateCases", e.Name())
		}
	}
	for name, opts := range estateCases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", "estates", name)
			est, diags := definition.Load(dir, opts)
			got := definition.FormatDiagnostics(diags)
			if strings.HasPrefix(name, "good-") && len(diags) > 0 {
				t.Errorf("good estate has diagnostics:\n%s", got)
			}
			if strings.HasPrefix(name, "bad-") && !diags.HasErrors() {
				t.Errorf("bad estate loaded without errors")
			}
			if (est == nil) != diags.HasErrors() {
				t.Errorf("estate nil = %v, but has errors = %v", est == nil, diags.HasErrors())
			}
			if est != nil {
				got += "---\n" + summary(est)
			}
			abs, _ := filepath.Abs(dir)
			abs, _ = filepath.EvalSymlinks(abs)
			got = strings.ReplaceAll(got, abs, "<estate>")
			golden := filepath.Join("testdata", "golden", name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestLoadGolden -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (run with -update if the change is intended)\n--- got:\n%s--- want:\n%s", golden, got, want)
			}
		})
	}
}

// summary renders what an estate holds, one fact a line, for golden files.
func summary(est *definition.Estate) string {
	var b strings.Builder
	fmt.Fprintf(&b, "files: %s\norder: %s\n", strings.Join(est.Files, " "), strings.Join(est.Order, " "))
	for _, name := range sortedNames(est.Variables) {
		v := est.Variables[name]
		fmt.Fprintf(&b, "var.%s = %s (from %s)\n", name, v.Value.GoString(), v.SetBy)
	}
	for _, name := range est.Order {
		img := est.Images[name]
		fmt.Fprintf(&b, "image %s (%s %d:%d-%d:%d) method=%s version=%q\n", img.Name, img.File,
			img.Range.Start.Line, img.Range.Start.Column, img.Range.End.Line, img.Range.End.Column, img.Method, img.Version)
		if img.Description != "" {
			fmt.Fprintf(&b, "  description: %s\n", img.Description)
		}
		switch {
		case img.Debian != nil:
			fmt.Fprintf(&b, "  debian: suite=%s mirror=%s variant=%s components=%v\n", img.Debian.Suite, img.Debian.Mirror, img.Debian.Variant, img.Debian.Components)
		case img.Base != nil:
			fmt.Fprintf(&b, "  base: %s number=%d\n", img.Base.Image, img.Base.Number)
		case img.Artifact != nil:
			fmt.Fprintf(&b, "  origin: %s %s local=%v\n", img.Artifact.Source, img.Artifact.Digest, img.Artifact.Path != "")
		}
		fmt.Fprintf(&b, "  packages: %v purge: %v\n", img.Packages, img.Purge)
		if len(img.Formats) != 1 || img.Formats[0] != "rootfs" {
			fmt.Fprintf(&b, "  formats: %v disks: %v\n", img.Formats, img.DiskFormats())
		}
		for _, k := range sortedNames(img.Tags) {
			fmt.Fprintf(&b, "  tag %s=%s\n", k, img.Tags[k])
		}
		for _, st := range img.Steps {
			switch st.Kind {
			case definition.StepFile:
				fmt.Fprintf(&b, "  file %s -> %s mode=%04o owner=%s %s\n", st.Source, st.Destination, st.Mode, st.Owner, st.Digest)
			case definition.StepShell:
				fmt.Fprintf(&b, "  shell inline=%q scripts=%v env=%v %s\n", st.Inline, st.Scripts, st.Env, st.Digest)
			}
		}
		if all := est.Volatile(name); len(all) > 0 {
			fmt.Fprintf(&b, "  volatile: %q with the bases': %q\n", img.Volatile, all)
		}
		if len(img.TestVars) > 0 {
			fmt.Fprintf(&b, "  test_vars: %v\n", img.TestVars)
		}
		fmt.Fprintf(&b, "  tests: %v\n  digest: %s\n", img.Tests, img.Digest)
	}
	return b.String()
}

func sortedNames[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
