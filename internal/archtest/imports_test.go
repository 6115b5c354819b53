package archtest

import (
	"bufio"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// rule is one import rule of docs/ARCHITECTURE.md. Rules look at the
// imports of non-test files only: tests may import whatever they exercise.
type rule struct {
	// name says the rule in a few words; knownViolations refer to it.
	name string
	// doc is the rule as docs/ARCHITECTURE.md words it, quoted in every
	// failure (TestRulesQuoteArchitecture checks the quote is still there);
	// " … " leaves out what the rule does not depend on.
	doc string
	// applies reports whether the rule constrains importer (a package path
	// relative to the module: "" for the root, "platform/local").
	applies func(importer string) bool
	// forbids reports whether the rule forbids importing imported, a
	// package of this module ("" for the root).
	forbids func(importer, imported string) bool
	// want says what to do, for the failure message.
	want string
}

// under reports whether pkg is one of prefixes or inside one of them.
func under(pkg string, prefixes ...string) bool {
	for _, p := range prefixes {
		if pkg == p || strings.HasPrefix(pkg, p+"/") {
			return true
		}
	}
	return false
}

// Kinds of packages, as docs/ARCHITECTURE.md names them.
var (
	// drivers implement a kiln interface on one technology.
	drivers = []string{"store", "artifact", "platform"}
	// useCases and interfaces: what drivers must never reach back into.
	useCases = []string{"cli", "api", "web", "pipeline", "rollout", "fleet", "build", "launch", "cmd"}
	// testOnly packages serve tests and must not be linked into kiln.
	testOnly = []string{"platform/platformtest", "platform/memory", "internal/ci", "internal/fixtures", "internal/testenv", "internal/registrytest", "internal/aptrepotest", "internal/archtest"}
	// wiring may import what others may not: cmd/kiln, the drivers
	// `kiln bench all` measures (internal/benchdrivers), and the test
	// support package that starts real drivers.
	wiring = []string{"cmd/kiln", "internal/benchdrivers", "internal/testenv"}
)

const (
	bake   = "platform/local/bake"
	vmdisk = "platform/vm/disk"
)

var rules = []rule{
	{
		name:    "root imports nothing of ours",
		doc:     "| `kiln` (root) | … | nothing of ours |",
		applies: func(p string) bool { return p == "" },
		forbids: func(_, _ string) bool { return true },
		want:    "the root package holds the domain only; move the code that needs this import into a package of its own",
	},
	{
		name:    "drivers import no use case or interface",
		doc:     "Dependencies point inward: every package below depends on the root package `kiln` (the domain) and on nothing else of ours unless stated.",
		applies: func(p string) bool { return under(p, drivers...) },
		forbids: func(_, imp string) bool { return under(imp, useCases...) },
		want:    "a driver implements a kiln interface and is called by use cases, never the other way; move the call into the use case or pass what the driver needs in",
	},
	{
		name: "only cmd/kiln imports drivers",
		doc:  "`cmd/kiln` is the only package that knows every concrete type; it only wires.",
		applies: func(p string) bool {
			return !under(p, wiring...) && !under(p, testOnly...)
		},
		forbids: func(imp, dep string) bool {
			if !under(dep, drivers...) || under(dep, testOnly...) || dep == bake || dep == vmdisk {
				return false // test doubles, bake and the disk builder have their own rules
			}
			// A driver's own subpackages are its business.
			return !under(imp, topDriver(dep))
		},
		want: "take the kiln interface (kiln.Registry, kiln.ArtifactStore, kiln.Platform, …) as a parameter and let cmd/kiln pass the driver in",
	},
	{
		name:    "only cmd/kiln and build import platform/local/bake",
		doc:     "`platform/local/bake` is what `build` drives on this platform.",
		applies: func(p string) bool { return !under(p, wiring...) && !under(p, "build", bake) },
		forbids: func(_, dep string) bool { return under(dep, bake) },
		want:    "go through build, or move what both need (Debian release files, package indexes) out of the local platform's build driver",
	},
	{
		name:    "only cmd/kiln, build and platform/vm import platform/vm/disk",
		doc:     "| `build` | … | `platform/local/bake`, `platform/vm/disk` (the disk images of `formats`),",
		applies: func(p string) bool { return !under(p, wiring...) && !under(p, "build", "platform/vm") },
		forbids: func(_, dep string) bool { return under(dep, vmdisk) },
		want:    "build makes disk images and the VM platform boots them; go through build, or take the version's disk artifact from the artifact store",
	},
	{
		name:    "platform/local and platform/local/bake do not import each other",
		doc:     "Neither imports the other.",
		applies: func(p string) bool { return under(p, "platform/local") },
		forbids: func(imp, dep string) bool {
			return (under(imp, bake) && under(dep, "platform/local") && !under(dep, bake)) ||
				(!under(imp, bake) && under(dep, bake))
		},
		want: "running instances and building images share no state; move what both need into the root package or a package of its own",
	},
	{
		name:    "only the platform drivers import internal/instancedir",
		doc:     "Platform drivers do not import each other: what `platform/local` and `platform/vm` share is in `internal/instancedir`, which nothing else imports.",
		applies: func(p string) bool { return !under(p, "platform/local", "platform/vm", "internal/instancedir") },
		forbids: func(_, dep string) bool { return under(dep, "internal/instancedir") },
		want:    "instance directories belong to the drivers that supervise them; go through kiln.Platform",
	},
	{
		name:    "internal/filedrift imports the domain and definition only",
		doc:     "| `internal/filedrift` | … | `definition` (volatile patterns); reads the tree it is given |",
		applies: func(p string) bool { return p == "internal/filedrift" },
		forbids: func(_, dep string) bool { return dep != "" && dep != "definition" },
		want:    "the comparison runs inside instances through their own kiln binary and is shared by the local and VM platforms' drift; keep it free of drivers and use cases",
	},
	{
		name:    "test doubles and test support are imported by tests only",
		doc:     "Test doubles and test support (`platform/memory`, `platform/platformtest`, `internal/ci`, `internal/fixtures`, `internal/testenv`, `internal/registrytest`, `internal/aptrepotest`) are imported by tests only.",
		applies: func(p string) bool { return !under(p, testOnly...) },
		forbids: func(_, dep string) bool { return under(dep, testOnly...) },
		want:    "import it from _test.go files only; the product must not link test doubles",
	},
}

// topDriver is the driver a driver package belongs to: "store",
// "artifact", "platform/local".
func topDriver(pkg string) string {
	parts := strings.Split(pkg, "/")
	if parts[0] == "platform" && len(parts) > 1 {
		return "platform/" + parts[1]
	}
	return parts[0]
}

// knownViolations are imports the rules forbid that today's tree still
// has, keyed "importer -> imported", each with the reason it is allowed
// for now. An entry that no longer occurs fails the test: delete it.
var knownViolations = map[string]string{}

// docsPending are rules whose quote docs/ARCHITECTURE.md does not have
// yet, with the reason.
var docsPending = map[string]string{}

// pkg is one package of the module and where each of its non-test imports
// of the module is written.
type pkg struct {
	path    string              // relative to the module root; "" is the root
	imports map[string][]string // imported package (relative) -> the file:line of each import of it
}

func TestImportRules(t *testing.T) {
	root, module := moduleRoot(t)
	pkgs := loadPackages(t, root, module)
	if len(pkgs) < 10 {
		t.Fatalf("found only %d packages under %s; is the walk broken?", len(pkgs), root)
	}
	seen := map[string]bool{}
	for _, path := range slices.Sorted(maps.Keys(pkgs)) {
		p := pkgs[path]
		for _, dep := range slices.Sorted(maps.Keys(p.imports)) {
			for _, r := range rules {
				if !r.applies(p.path) || !r.forbids(p.path, dep) {
					continue
				}
				k := show(p.path) + " -> " + show(dep)
				if _, ok := knownViolations[k]; ok {
					seen[k] = true
					t.Logf("known violation %s (%s): %s", k, strings.Join(p.imports[dep], ", "), knownViolations[k])
					continue
				}
				t.Errorf("%s imports %s (%s), which breaks the rule %q.\n  ARCHITECTURE.md: %s\n  what to do: %s",
					show(p.path), show(dep), strings.Join(p.imports[dep], ", "), r.name, r.doc, r.want)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(knownViolations)) {
		if !seen[k] {
			t.Errorf("knownViolations lists %q, which no longer occurs: delete the entry from internal/archtest/imports_test.go", k)
		}
	}
}

// The rules quote docs/ARCHITECTURE.md; when the document changes, the
// quotes must follow (or the rule changed: then the test must too).
func TestRulesQuoteArchitecture(t *testing.T) {
	root, _ := moduleRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "docs", "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Join(strings.Fields(string(b)), " ")
	for _, r := range rules {
		present := quotes(doc, r.doc)
		if reason, ok := docsPending[r.name]; ok {
			if present {
				t.Errorf("docsPending lists rule %q, whose quote docs/ARCHITECTURE.md has now: delete the entry", r.name)
			} else {
				t.Logf("rule %q: quote not in docs/ARCHITECTURE.md yet: %s", r.name, reason)
			}
			continue
		}
		if !present {
			t.Errorf("rule %q quotes docs/ARCHITECTURE.md as %q, which it no longer says: update the quote (or the rule) in internal/archtest/imports_test.go", r.name, r.doc)
		}
	}
}

// quotes reports whether doc says quote: its parts between " … " in
// order, whitespace runs counting as one space.
func quotes(doc, quote string) bool {
	for _, part := range strings.Split(strings.Join(strings.Fields(quote), " "), " … ") {
		i := strings.Index(doc, part)
		if i < 0 {
			return false
		}
		doc = doc[i+len(part):]
	}
	return true
}

// The rules themselves, on made-up imports: a rule that forbids nothing
// would let every test above pass.
func TestRulesCatch(t *testing.T) {
	cases := []struct {
		importer, imported string
		broken             bool
	}{
		{"", "deb822", true},
		{"store", "fleet", true},
		{"platform/local", "rollout", true},
		{"platform/local/bake", "build", true},
		{"artifact", "launch", true},
		{"platform/vm", "cli", true},
		{"rollout", "store", true},
		{"cli", "platform/local", true},
		{"api", "artifact", true},
		{"pipeline", bake, true},
		{"rollout", "platform/memory", true},
		{"cmd/kiln", "platform/memory", true},
		{"platform/local", bake, true},
		{bake, "platform/local", true},
		{"platform/local", "artifact", true},
		{"cmd/kiln", "store", false},
		{"cmd/kiln", bake, false},
		{"build", bake, false},
		{"build", vmdisk, false},
		{"platform/vm", vmdisk, false},
		{"launch", vmdisk, true},
		{"pipeline", vmdisk, true},
		{"build", "platform/vm", true},
		{"internal/testenv", "platform/local", false},
		{"internal/testenv", "platform/platformtest", false},
		{"platform/memory", "platform/platformtest", false},
		{bake, "deb822", false},
		{"rollout", "deb822", false},
		{"store", "", false},
		{"platform/local", "", false},
		{"internal/filedrift", "definition", false},
		{"internal/filedrift", "rollout", true},
		{"internal/filedrift", "platform/vm", true},
		{"platform/vm", "internal/filedrift", false},
		{"rollout", "internal/filedrift", false},
	}
	for _, c := range cases {
		var broke []string
		for _, r := range rules {
			if r.applies(c.importer) && r.forbids(c.importer, c.imported) {
				broke = append(broke, r.name)
			}
		}
		if (len(broke) > 0) != c.broken {
			t.Errorf("%s -> %s: broken rules %q; want broken %v", show(c.importer), show(c.imported), broke, c.broken)
		}
	}
}

func show(p string) string {
	if p == "" {
		return "kiln (root)"
	}
	return p
}

// moduleRoot finds go.mod above the test's directory and returns its
// directory and module path.
func moduleRoot(t *testing.T) (dir, module string) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		f, err := os.Open(filepath.Join(dir, "go.mod"))
		if err == nil {
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if m, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
					return dir, strings.Trim(strings.TrimSpace(m), `"`)
				}
			}
			t.Fatalf("%s/go.mod has no module line", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// loadPackages reads the imports of every non-test .go file of the module,
// whatever its build constraints: a rule holds on every platform.
func loadPackages(t *testing.T, root, module string) map[string]*pkg {
	t.Helper()
	pkgs := map[string]*pkg{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			if path != root {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		p := pkgs[rel]
		if p == nil {
			p = &pkg{path: rel, imports: map[string][]string{}}
			pkgs[rel] = p
		}
		for _, im := range f.Imports {
			ip, _ := strconv.Unquote(im.Path.Value)
			var dep string
			switch {
			case ip == module:
				dep = ""
			case strings.HasPrefix(ip, module+"/"):
				dep = strings.TrimPrefix(ip, module+"/")
			default:
				continue
			}
			pos := fset.Position(im.Pos())
			frel, _ := filepath.Rel(root, pos.Filename)
			p.imports[dep] = append(p.imports[dep], fmt.Sprintf("%s:%d", filepath.ToSlash(frel), pos.Line))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}
