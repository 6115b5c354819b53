package verify

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/fixtures"
)

// gossTree lays the shared goss fixtures out as they are in goss's
// repository ("integration-tests__goss__vars.yaml" becomes
// integration-tests/goss/vars.yaml), so that their includes resolve, and
// returns the root and the files' paths in it.
func gossTree(t *testing.T) (string, []string) {
	t.Helper()
	dir := fixtures.Path(t, "goss")
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) == 0 {
		t.Fatalf("no goss fixtures in %s", dir)
	}
	root := t.TempDir()
	var paths []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.FromSlash(strings.ReplaceAll(filepath.Base(f), "__", "/")))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return root, paths
}

// gossFixtureVars are the vars goss's own integration test renders its
// files with: vars.yaml, `--vars-inline "{inline: bar, overwrite: bar}"`
// and OS=bullseye in the environment.
func gossFixtureVars(t *testing.T, root string) Vars {
	t.Helper()
	t.Setenv("OS", "bullseye")
	vars, err := LoadVars([]string{filepath.Join(root, "integration-tests/goss/vars.yaml")}, "{inline: bar, overwrite: bar}", "--vars-inline")
	if err != nil {
		t.Fatal(err)
	}
	return vars
}

// TestParseGossFixtures parses every public goss file of the shared
// fixtures, the templated ones rendered as goss's integration test renders
// them. All parse; the vars file is refused as a vars file. The counts are
// logged (before kiln had the whole format: 4 parsed, 6 refused).
func TestParseGossFixtures(t *testing.T) {
	root, paths := gossTree(t)
	vars := gossFixtureVars(t, root)
	refused := map[string]string{"integration-tests/goss/vars.yaml": "is a vars file, not a test file: pass it with --vars"}
	located := regexp.MustCompile(`\.yaml:\d+:\d+: `)
	parsed, nRefused := 0, 0
	suites := map[string]*Suite{}
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		s, err := ParseFileWith(p, ParseOptions{Vars: vars})
		if err != nil {
			nRefused++
		} else {
			parsed++
			suites[rel] = s
		}
		t.Run(strings.ReplaceAll(rel, "/", "__"), func(t *testing.T) {
			want, isRefused := refused[rel]
			switch {
			case isRefused && err == nil:
				t.Fatalf("parsed %d resources, want %q", len(s.Resources), want)
			case isRefused && !strings.Contains(err.Error(), want):
				t.Errorf("error does not say %q:\n%v", want, err)
			case isRefused:
			case err != nil:
				t.Errorf("ParseFile: %v", err)
				for _, line := range strings.Split(err.Error(), "\n") {
					if !located.MatchString(line) {
						t.Errorf("error line without file:line:col: %q", line)
					}
				}
			case s.Count() == 0:
				t.Error("parsed with no checks")
			}
		})
	}
	t.Logf("goss fixtures: %d parsed, %d refused (of %d)", parsed, nRefused, len(paths))

	// goss's integration test renders bullseye/goss.yaml (with its includes)
	// to 127 checks; kiln reads the same ones, plus the six empty pattern
	// lists (`stderr: []`) that goss drops and kiln counts as passing checks.
	s := suites["integration-tests/goss/bullseye/goss.yaml"]
	if s == nil {
		t.Fatal("bullseye/goss.yaml did not parse")
	}
	empty := 0
	for _, r := range s.Resources {
		for _, c := range r.Checks {
			if c.Expect.Op == opPatterns && len(c.Expect.Patterns) == 0 {
				empty++
			}
		}
	}
	if s.Count()-empty != 127 || empty != 6 {
		t.Errorf("bullseye/goss.yaml: %d checks, %d of them empty pattern lists; goss counts 127 checks besides 6 empty lists", s.Count(), empty)
	}
	find := func(typ, id string) *Resource {
		for i := range s.Resources {
			if s.Resources[i].Type == typ && s.Resources[i].ID == id {
				return &s.Resources[i]
			}
		}
		t.Fatalf("no %s %q in %v", typ, id, s.Files)
		return nil
	}
	// apache2 is declared by goss-service.yaml and goss-shared.yaml: merged.
	var props []string
	for _, c := range find("service", "apache2").Checks {
		props = append(props, c.Property)
	}
	if slices.Sort(props); !slices.Equal(props, []string{"enabled", "runlevels", "running"}) {
		t.Errorf("service apache2 checks %v", props)
	}
	if got := find("package", "apache2").Checks[1].Expect.String(); got != "[2.4.67-1~deb11u2]" {
		t.Errorf("apache2 versions from vars.yaml: %s", got)
	}
	for id, want := range map[string]any{"vars_inline_simple": "bar", "vars_inline_overwrite": "bar", "sping_basic": "HELLO!HELLO!HELLO!HELLO!HELLO!"} {
		if got := find("matching", id).Content; got != want {
			t.Errorf("matching %s content %v, want %v", id, got, want)
		}
	}
	if r := find("http", "http://httpbin/anything"); r.HTTP == nil || r.HTTP.Proxy != "http://127.0.0.1:8888" {
		t.Errorf("http proxy from vars.yaml: %+v", r.HTTP)
	}
}
