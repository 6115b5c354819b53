package sbom

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/fixtures"
)

// testVersion is a version with n installed packages, among them the
// cases that trip SBOM writers: a binNMU (source version differs), a
// source package of another name, an epoch, '+' and '~' in versions and
// names, a package of two architectures.
func testVersion(n int) *kiln.Version {
	pkgs := []kiln.Package{
		{Name: "libssl3", Version: "3.0.11-1~deb12u2", Architecture: "amd64", Source: "openssl"},
		{Name: "openssl", Version: "3.0.11-1~deb12u2", Architecture: "amd64"},
		{Name: "libstdc++6", Version: "12.2.0-14", Architecture: "amd64", Source: "gcc-12"},
		{Name: "libstdc--6", Version: "1.0", Architecture: "amd64"},
		{Name: "libc6", Version: "2.36-9+deb12u4", Architecture: "amd64", Source: "glibc"},
		{Name: "libc6", Version: "2.36-9+deb12u4", Architecture: "i386", Source: "glibc"},
		{Name: "perl-base", Version: "5.36.0-7+deb12u1", Architecture: "amd64", Source: "perl"},
		{Name: "libgcrypt20", Version: "1.10.1-3", Architecture: "amd64"},
		{Name: "bsdutils", Version: "1:2.38.1-5+b1", Architecture: "amd64", Source: "util-linux", SourceVersion: "2.38.1-5"},
		{Name: "tzdata", Version: "2024a-0+deb12u1", Architecture: "all"},
	}
	for i := len(pkgs); i < n; i++ {
		src := fmt.Sprintf("src%d", i/3)
		pkgs = append(pkgs, kiln.Package{Name: fmt.Sprintf("pkg%04d", i), Version: fmt.Sprintf("%d.%d-%d", i%7, i%11, i%3+1), Architecture: "amd64", Source: src})
	}
	slices.SortFunc(pkgs, func(a, b kiln.Package) int {
		return strings.Compare(a.Name+"/"+a.Architecture, b.Name+"/"+b.Architecture)
	})
	return &kiln.Version{
		Image: "appserver", Number: 3, Name: "appserver-3", Status: kiln.StatusReady,
		CreatedAt: time.Date(2026, 11, 30, 10, 4, 5, 123456000, time.UTC),
		Provenance: kiln.Provenance{
			Method: kiln.MethodFresh,
			Base:   &kiln.VersionRef{Image: "basic-linux", Number: 2},
			Sources: []kiln.Source{
				{Kind: kiln.SourceOrigin, Ref: "bookworm@http://deb.debian.org/debian", Digest: "sha256:" + strings.Repeat("1", 64)},
				{Kind: kiln.SourceDefinition, Ref: "images/appserver.kiln.hcl", Digest: "sha256:" + strings.Repeat("2", 64)},
				{Kind: kiln.SourceConfig, Ref: "scripts/setup.sh", Digest: "sha256:" + strings.Repeat("3", 64)},
				{Kind: kiln.SourceConfig, Ref: "files/app.conf"},
			},
			Packages: pkgs,
			Artifact: &kiln.Artifact{Ref: "local:sha256:ab", Digest: "sha256:" + strings.Repeat("ab", 32), Size: 1 << 20},
			BuiltBy:  "local:alice",
		},
	}
}

var testLicences = map[string]string{
	"libc6":     "LGPL-2.1-or-later AND LicenseRef-public-domain",
	"openssl":   "Apache-2.0",
	"perl-base": "GPL-1.0-or-later OR Artistic-1.0-Perl",
}

func compileSchemas(t *testing.T) map[Format]*jsonschema.Schema {
	t.Helper()
	dir := fixtures.Path(t, "sbom-schemas")
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for _, f := range []string{"spdx-2.3.schema.json", "bom-1.6.schema.json", "spdx.schema.json", "jsf-0.82.schema.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		id, _ := doc.(map[string]any)["$id"].(string)
		if err := c.AddResource(id, doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	out := map[Format]*jsonschema.Schema{}
	for f, id := range map[Format]string{FormatSPDX: "http://spdx.org/rdf/terms/2.3", FormatCycloneDX: "http://cyclonedx.org/schema/bom-1.6.schema.json"} {
		s, err := c.Compile(id)
		if err != nil {
			t.Fatalf("compile %s: %v", id, err)
		}
		out[f] = s
	}
	return out
}

func validate(t *testing.T, s *jsonschema.Schema, b []byte) {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(doc); err != nil {
		t.Fatalf("document does not validate against the official schema: %v", err)
	}
}

func TestSchemas(t *testing.T) {
	schemas := compileSchemas(t)
	for _, tc := range []struct {
		name string
		v    *kiln.Version
		lic  map[string]string
	}{
		{"130 packages with licences", testVersion(130), testLicences},
		{"no licences", testVersion(20), nil},
		{"no artifact, no inputs, no base", &kiln.Version{Image: "bare", Number: 1, Provenance: kiln.Provenance{Method: kiln.MethodExternal}}, nil},
	} {
		for _, f := range Formats {
			t.Run(tc.name+"/"+string(f), func(t *testing.T) {
				b, _, err := Generate(tc.v, f, Options{Licenses: tc.lic})
				if err != nil {
					t.Fatal(err)
				}
				validate(t, schemas[f], b)
			})
		}
	}
}

// TestPackageSet checks each format lists exactly the manifest's
// packages, with purls, licences and source links.
func TestPackageSet(t *testing.T) {
	v := testVersion(130)
	want := map[string]bool{}
	for _, p := range v.Provenance.Packages {
		want[purl(p.Name, p.Version, p.Architecture, "debian-12")] = true
	}

	b, st, err := Generate(v, FormatSPDX, Options{Licenses: testLicences})
	if err != nil {
		t.Fatal(err)
	}
	var sd spdxDocument
	if err := json.Unmarshal(b, &sd); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	byID := map[string]spdxPackage{}
	for _, p := range sd.Packages {
		byID[p.SPDXID] = p
		if p.PrimaryPurpose == "" {
			got[p.ExternalRefs[0].Locator] = true
		}
	}
	if !mapsEqual(got, want) {
		t.Errorf("SPDX packages differ from the manifest: got %d, want %d", len(got), len(want))
	}
	contains, generated := 0, 0
	for _, r := range sd.Relationships {
		switch r.Type {
		case "CONTAINS":
			contains++
		case "GENERATED_FROM":
			if byID[r.Related].PrimaryPurpose == "SOURCE" {
				generated++
			}
		}
	}
	if contains != len(want) || generated != len(want) {
		t.Errorf("relationships: %d CONTAINS, %d GENERATED_FROM a source package; want %d each", contains, generated, len(want))
	}
	if st.Packages != 130 || st.Licensed != 4 || st.NoAssertion != 126 {
		t.Errorf("stats %+v; want 130 packages, 4 licensed (libc6 twice), 126 NOASSERTION", st)
	}
	// The binNMU's source version, the epoch and '+' in the purl.
	if !strings.Contains(string(b), `"sourceInfo": "built package from: util-linux 2.38.1-5"`) ||
		!strings.Contains(string(b), `pkg:deb/debian/bsdutils@1%3A2.38.1-5%2Bb1?arch=amd64&distro=debian-12`) {
		t.Errorf("bsdutils (binNMU with an epoch) is not described right")
	}
	if !strings.Contains(string(b), `"licenseId": "LicenseRef-public-domain"`) {
		t.Error("the LicenseRef used by libc6 is not declared")
	}

	b, _, err = Generate(v, FormatCycloneDX, Options{Licenses: testLicences})
	if err != nil {
		t.Fatal(err)
	}
	var cd cdxDocument
	if err := json.Unmarshal(b, &cd); err != nil {
		t.Fatal(err)
	}
	got = map[string]bool{}
	for _, c := range cd.Components {
		got[c.PURL] = true
		if c.BOMRef != c.PURL || c.Pedigree == nil || len(c.Pedigree.Ancestors) != 1 {
			t.Errorf("component %s: bom-ref %q, pedigree %+v", c.Name, c.BOMRef, c.Pedigree)
		}
	}
	if !mapsEqual(got, want) {
		t.Errorf("CycloneDX components differ from the manifest: got %d, want %d", len(got), len(want))
	}
	if a := cd.Metadata.Component.Pedigree; a == nil || a.Ancestors[0].Name != "basic-linux" {
		t.Errorf("the base version is not the image's ancestor: %+v", a)
	}
	if len(cd.Formulation) != 1 || len(cd.Formulation[0].Components) != 4 {
		t.Errorf("kiln's inputs are not in the formulation: %+v", cd.Formulation)
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func TestDeterministic(t *testing.T) {
	for _, f := range Formats {
		a, _, err := Generate(testVersion(50), f, Options{Licenses: testLicences})
		if err != nil {
			t.Fatal(err)
		}
		b, _, _ := Generate(testVersion(50), f, Options{Licenses: testLicences})
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two runs over the same version differ", f)
		}
		c, _, _ := Generate(testVersion(50), f, Options{})
		if bytes.Equal(a, c) {
			t.Errorf("%s: documents with and without licences are the same", f)
		}
		// The id differs with the content.
		idOf := func(b []byte) string {
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			return fmt.Sprint(m["documentNamespace"], m["serialNumber"])
		}
		if idOf(a) == idOf(c) {
			t.Errorf("%s: different documents share the id %s", f, idOf(a))
		}
	}
}

func TestPurl(t *testing.T) {
	for _, tc := range []struct{ name, version, arch, distro, want string }{
		{"libssl3", "3.0.11-1~deb12u2", "amd64", "debian-12", "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"},
		{"libstdc++6", "12.2.0-14", "amd64", "debian-12", "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64&distro=debian-12"},
		{"bsdutils", "1:2.38.1-5+b1", "amd64", "", "pkg:deb/debian/bsdutils@1%3A2.38.1-5%2Bb1?arch=amd64"},
		{"util-linux", "2.38.1-5", "source", "debian-12", "pkg:deb/debian/util-linux@2.38.1-5?arch=source&distro=debian-12"},
	} {
		if got := purl(tc.name, tc.version, tc.arch, tc.distro); got != tc.want {
			t.Errorf("purl(%s %s) = %s; want %s", tc.name, tc.version, got, tc.want)
		}
	}
}

func TestDistro(t *testing.T) {
	for ref, want := range map[string]string{
		"bookworm@http://deb.debian.org/debian": "debian-12",
		"trixie@http://mirror/debian":           "debian-13",
		"sid@http://deb.debian.org/debian":      "debian-sid",
		"basic-linux-2":                         "",
	} {
		v := &kiln.Version{Provenance: kiln.Provenance{Sources: []kiln.Source{{Kind: kiln.SourceOrigin, Ref: ref}}}}
		if got := Distro(v); got != want {
			t.Errorf("Distro(%s) = %q; want %q", ref, got, want)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"spdx": FormatSPDX, "CycloneDX": FormatCycloneDX, "cdx": FormatCycloneDX} {
		if got, err := ParseFormat("--format", in); err != nil || got != want {
			t.Errorf("ParseFormat(%s) = %s, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("--format", "swid"); err == nil || !strings.Contains(err.Error(), "use spdx or cyclonedx") {
		t.Errorf("ParseFormat(swid): %v", err)
	}
}

// BenchmarkGenerate measures SBOM generation for an image of about 130
// packages (a basic Debian image) and a synthetic 1,000-package manifest;
// docs/benchmarks.md has the figures.
func BenchmarkGenerate(b *testing.B) {
	for _, n := range []int{130, 1000} {
		v := testVersion(n)
		for _, f := range Formats {
			b.Run(fmt.Sprintf("%s/%d", f, n), func(b *testing.B) {
				for b.Loop() {
					if _, _, err := Generate(v, f, Options{Licenses: testLicences}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
