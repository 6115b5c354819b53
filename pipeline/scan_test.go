package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/pipeline"
)

func TestScanPolicy(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	if err := db.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web", Provenance: kiln.Provenance{Packages: []kiln.Package{
		{Name: "libssl3", Version: "3.0.11-1~deb12u1", Architecture: "amd64", Source: "openssl"},
		{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Architecture: "amd64", Source: "zlib"},
		{Name: "bash", Version: "5.2.15-2+b2", Architecture: "amd64"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutAdvisories(ctx, []*kiln.Advisory{
		{ID: "DSA-5532-1", Source: kiln.AdvisoryOSV, Packages: []kiln.AffectedPackage{
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "openssl", Fixed: "3.0.11-1~deb12u2", Status: kiln.AffectedFixed, Severity: "high"}}},
		{ID: "DLA-1-1", Source: kiln.AdvisoryOSV, Packages: []kiln.AffectedPackage{
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "zlib", Fixed: "1:1.2.13.dfsg-2", Status: kiln.AffectedFixed, Severity: "low"}}},
		{ID: "DSA-9-1", Source: kiln.AdvisoryOSV, Packages: []kiln.AffectedPackage{
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "bash", Fixed: "5.2.15-2", Status: kiln.AffectedFixed, Severity: "critical"}}},
	}); err != nil {
		t.Fatal(err)
	}
	v, _ = db.FindVersion(ctx, v.Ref())
	res, err := pipeline.Scan(ctx, db, v, "bookworm", definition.ScanPolicy{OnAffected: "fail"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Affected) != 2 || res.Advisories != 3 {
		t.Fatalf("all severities: %+v", res)
	}
	if !strings.Contains(res.Summary(), "DSA-5532-1") || !strings.Contains(res.Summary(), "DLA-1-1") {
		t.Fatalf("summary: %s", res.Summary())
	}
	res, _ = pipeline.Scan(ctx, db, v, "bookworm", definition.ScanPolicy{OnAffected: "fail", MinSeverity: "high"})
	if len(res.Affected) != 1 || res.Affected[0].Advisory != "DSA-5532-1" || res.Ignored != 1 {
		t.Fatalf("min severity high: %+v", res)
	}
	res, _ = pipeline.Scan(ctx, db, v, "bullseye", definition.ScanPolicy{})
	if len(res.Affected) != 0 {
		t.Fatalf("another release's advisories matched: %+v", res.Affected)
	}
}

// A finding Debian triaged (no DSA, unimportant, end-of-life) does not fail
// the scan unless the policy includes its state.
func TestScanPolicyTriage(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	if err := db.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web", Provenance: kiln.Provenance{Packages: []kiln.Package{
		{Name: "apparmor", Version: "3.0.8-3", Architecture: "amd64"},
		{Name: "libssl3", Version: "3.0.11-1~deb12u1", Architecture: "amd64", Source: "openssl"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutAdvisories(ctx, []*kiln.Advisory{
		{ID: "CVE-2016-1585", Source: kiln.AdvisoryDebianTracker, Packages: []kiln.AffectedPackage{
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "apparmor", Status: kiln.AffectedOpen, Severity: "unimportant"}}},
		{ID: "CVE-2099-0101", Source: kiln.AdvisoryDebianTracker, Packages: []kiln.AffectedPackage{
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "openssl", Status: kiln.AffectedOpen, Severity: "low", NoDSA: "postponed", Note: "Minor issue"}}},
	}); err != nil {
		t.Fatal(err)
	}
	v, _ = db.FindVersion(ctx, v.Ref())
	res, err := pipeline.Scan(ctx, db, v, "bookworm", definition.ScanPolicy{OnAffected: "fail"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Affected) != 0 || res.Triaged != 2 || !strings.Contains(res.Summary(), "2 finding(s) Debian issues no DSA/DLA for") {
		t.Fatalf("default policy: %+v (%s)", res, res.Summary())
	}
	res, _ = pipeline.Scan(ctx, db, v, "bookworm", definition.ScanPolicy{OnAffected: "fail", Include: []string{"no-dsa"}})
	if len(res.Affected) != 1 || res.Affected[0].Advisory != "CVE-2099-0101" || res.Triaged != 1 {
		t.Fatalf("include no-dsa: %+v", res)
	}
	if !strings.Contains(res.Affected[0].Reason, "Debian: no DSA (postponed: Minor issue)") {
		t.Errorf("reason: %s", res.Affected[0].Reason)
	}
}

// countingAdvisories counts how the scan reads the store.
type countingAdvisories struct {
	kiln.AdvisoryStore
	batch   kiln.AdvisoriesByPackage
	batches int
	lists   int
}

func (c *countingAdvisories) ListAdvisories(ctx context.Context, f kiln.AdvisoryFilter) ([]*kiln.Advisory, int, error) {
	if f.Package != "" {
		c.lists++
	}
	return c.AdvisoryStore.ListAdvisories(ctx, f)
}

func (c *countingAdvisories) AdvisoriesForPackages(ctx context.Context, names []string) ([]*kiln.Advisory, error) {
	c.batches++
	return c.batch.AdvisoriesForPackages(ctx, names)
}

// A scan reads the advisories of a version's packages in one batch when
// the store can (the database), not one query per package, and finds what
// the per-package reads find.
func TestScanBatchesPackages(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	if err := db.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	pkgs := []kiln.Package{{Name: "libssl3", Version: "3.0.11-1~deb12u1", Architecture: "amd64", Source: "openssl"}}
	for i := range 300 {
		pkgs = append(pkgs, kiln.Package{Name: fmt.Sprintf("pkg%03d", i), Version: "1.0-1", Architecture: "amd64"})
	}
	v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web", Provenance: kiln.Provenance{Packages: pkgs}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutAdvisories(ctx, []*kiln.Advisory{
		{ID: "DSA-5532-1", Source: kiln.AdvisoryOSV, Packages: []kiln.AffectedPackage{
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "openssl", Fixed: "3.0.11-1~deb12u2", Status: kiln.AffectedFixed, Severity: "high"}}},
		{ID: "DSA-9-1", Source: kiln.AdvisoryOSV, Packages: []kiln.AffectedPackage{
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "pkg299", Fixed: "1.0-2", Status: kiln.AffectedFixed, Severity: "critical"}}},
	}); err != nil {
		t.Fatal(err)
	}
	v, _ = db.FindVersion(ctx, v.Ref())
	batched := &countingAdvisories{AdvisoryStore: db, batch: db}
	res, err := pipeline.Scan(ctx, batched, v, "bookworm", definition.ScanPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if batched.batches != 1 || batched.lists != 0 {
		t.Errorf("scan of %d packages: %d batch reads, %d per-package lists; want 1 and 0", len(pkgs), batched.batches, batched.lists)
	}
	// The per-package path (a store that cannot batch) finds the same.
	plain := &countingAdvisories{AdvisoryStore: db}
	want, err := pipeline.Scan(ctx, struct{ kiln.AdvisoryStore }{plain}, v, "bookworm", definition.ScanPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if plain.lists != len(pkgs) {
		t.Errorf("per-package path: %d lists", plain.lists)
	}
	if res.Summary() != want.Summary() || len(res.Affected) != 2 || res.Advisories != 2 {
		t.Errorf("batched %q (%d affected of %d), per package %q", res.Summary(), len(res.Affected), res.Advisories, want.Summary())
	}
}
