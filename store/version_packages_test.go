package store

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-project/kiln"
)

func packerVersion(image, artifact string) *kiln.NewVersion {
	return &kiln.NewVersion{Image: image, Provenance: kiln.Provenance{
		Method:   kiln.MethodExternal,
		Artifact: &kiln.Artifact{Ref: artifact},
	}}
}

var testPackages = []kiln.Package{
	{Name: "libssl3", Version: "3.0.11-1~deb12u2", Architecture: "amd64", Source: "openssl"},
	{Name: "openssl", Version: "3.0.11-1~deb12u2", Architecture: "amd64"},
	{Name: "zlib1g", Version: "1:1.2.13.dfsg-1+b1", Architecture: "amd64", Source: "zlib", SourceVersion: "1:1.2.13.dfsg-1"},
}

// An external version is given its manifest once, audited and in its
// history; a second manifest, a kiln-built version and bad input are
// refused and change nothing.
func TestSetPackages(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "alice")
		mkImage(t, e.DB, "web")
		ext := mkVersion(t, e.DB, packerVersion("web", "packer:amazon-ebs:us-east-1:ami-0abc"))
		built := mkVersion(t, e.DB, &kiln.NewVersion{Image: "web", Provenance: kiln.Provenance{
			Packages: testPackages[:1], Artifact: &kiln.Artifact{Ref: "sha256:" + strings.Repeat("a", 64), Digest: "sha256:" + strings.Repeat("a", 64)}}})

		before := e.counts(t)
		dup := append([]kiln.Package{}, testPackages...)
		dup = append(dup, testPackages[0])
		if f := kiln.ErrorField(wantErr(t, must2e(e.SetPackages(ctx, ext.Ref(), dup)))); f != "packages[3]" {
			t.Errorf("duplicate package: field %q, want packages[3]", f)
		}
		wantCode(t, must2e(e.SetPackages(ctx, ext.Ref(), nil)), kiln.EINVALID)
		wantContains(t, wantCode(t, must2e(e.SetPackages(ctx, built.Ref(), testPackages)), kiln.EIMMUTABLE), "built by kiln", "signed provenance")
		wantCode(t, must2e(e.SetPackages(ctx, ref("web", 9), testPackages)), kiln.ENOTFOUND)
		e.unchanged(t, before)

		head := auditHead(t, e)
		v := must[*kiln.Version](t)(e.SetPackages(ctx, ext.Ref(), testPackages))
		if len(v.Provenance.Packages) != 3 || v.Provenance.Packages[2] != testPackages[2] {
			t.Errorf("returned packages %+v", v.Provenance.Packages)
		}
		got := must[*kiln.Version](t)(e.FindVersion(ctx, ext.Ref()))
		if len(got.Provenance.Packages) != 3 || got.Provenance.Packages[0] != testPackages[0] {
			t.Errorf("stored packages %+v", got.Provenance.Packages)
		}
		if acts := auditActions(t, e, head); strings.Join(acts, " ") != "version.packages" {
			t.Errorf("audit %q; want version.packages", acts)
		}
		hs := must[[]*kiln.HistoryEntry](t)(e.History(ctx, ext.Ref()))
		if last := hs[len(hs)-1]; last.Field != "packages" || last.To != "3 packages" || last.Actor != "alice" {
			t.Errorf("last history entry %+v", last)
		}
		// The exposure's read sees it.
		ms := must[[]*kiln.PackageManifest](t)(e.Manifests(ctx, []string{"openssl"}))
		found := false
		for _, m := range ms {
			if m.Version == ext.Ref() {
				found = len(m.Packages) == 2 // libssl3 (source openssl) and openssl
			}
		}
		if !found {
			t.Errorf("the fleet's manifests of openssl do not list %s with its packages: %+v", ext.Ref(), ms)
		}

		before = e.counts(t)
		wantContains(t, wantCode(t, must2e(e.SetPackages(ctx, ext.Ref(), testPackages[:1])), kiln.EIMMUTABLE), "has a package manifest already (3 packages)")
		e.unchanged(t, before)
	})
}

// Two concurrent calls for one external version: one records its
// manifest, the other is refused.
func TestSetPackagesConcurrent(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "web")
		ext := mkVersion(t, e.DB, packerVersion("web", "packer:amazon-ebs:us-east-1:ami-0abc"))
		other := e.reopen(t)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, db := range []*DB{e.DB, other} {
			wg.Go(func() {
				// Different manifests, so a missing lock would let both in.
				_, errs[i] = db.SetPackages(ctx, ext.Ref(), testPackages[i:i+1])
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else if kiln.ErrorCode(err) != kiln.EIMMUTABLE {
				t.Errorf("the losing call: %v; want EIMMUTABLE", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d calls succeeded (%v); want exactly one", ok, errs)
		}
		if got := must[*kiln.Version](t)(e.FindVersion(ctx, ext.Ref())); len(got.Provenance.Packages) != 1 {
			t.Errorf("stored %+v; want one manifest of one package", got.Provenance.Packages)
		}
	})
}

func must2e(_ *kiln.Version, err error) error { return err }
