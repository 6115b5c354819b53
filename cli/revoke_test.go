package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/store"
)

// revocationEstate records basic-linux-1 (ready) and appserver-1 and
// worker-1 built on it, each ready, in the SQLite registry of dir.
func revocationEstate(t *testing.T, dir string) {
	t.Helper()
	ctx := kiln.WithActor(context.Background(), "local:test")
	db, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var base *kiln.VersionRef
	for _, img := range []string{"basic-linux", "appserver", "worker"} {
		if err := db.CreateImage(ctx, &kiln.Image{Name: img}); err != nil {
			t.Fatal(err)
		}
		v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: img, Provenance: kiln.Provenance{Base: base}})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
			if _, err := db.SetStatus(ctx, v.Ref(), st, ""); err != nil {
				t.Fatal(err)
			}
		}
		r := v.Ref()
		base = &r
	}
}

func TestVersionRevokeAndRestore(t *testing.T) {
	dir := t.TempDir()
	revocationEstate(t, dir)

	if _, errs, code := kilnCmd(t, dir, "version", "revoke", "basic-linux-1"); code != 1 || !strings.Contains(errs, "--reason") {
		t.Fatalf("revoke without a reason: exit %d, %s", code, errs)
	}
	out, errs, code := kilnCmd(t, dir, "version", "revoke", "basic-linux-1", "--reason", "CVE-2026-1 in openssl")
	want := "revoked basic-linux-1 (was ready): CVE-2026-1 in openssl\n" +
		"revoked appserver-1 (was ready) through basic-linux-1\n" +
		"revoked worker-1 (was ready) through basic-linux-1\n" +
		"3 versions revoked\n"
	if code != 0 || out != want {
		t.Fatalf("revoke: exit %d, stderr %s, stdout:\n%s\nwant:\n%s", code, errs, out, want)
	}
	if out, _, _ := kilnCmd(t, dir, "version", "show", "worker-1"); !strings.Contains(out, "Status:    revoked") {
		t.Errorf("show worker-1 after the revocation:\n%s", out)
	}
	if _, errs, code := kilnCmd(t, dir, "version", "restore", "appserver-1", "--reason", "x"); code == 0 || !strings.Contains(errs, "appserver-1") {
		t.Errorf("restore of a version revoked through its base: exit %d, %s", code, errs)
	}
	out, errs, code = kilnCmd(t, dir, "version", "restore", "basic-linux-1", "--reason", "false alarm")
	if code != 0 || out != "restored basic-linux-1\nrestored appserver-1\nrestored worker-1\n" {
		t.Fatalf("restore: exit %d, stderr %s, stdout:\n%s", code, errs, out)
	}
	if out, _, _ := kilnCmd(t, dir, "version", "show", "worker-1"); !strings.Contains(out, "Status:    ready") {
		t.Errorf("show worker-1 after the restore:\n%s", out)
	}
}

func TestVersionScheduledRevocation(t *testing.T) {
	dir := t.TempDir()
	revocationEstate(t, dir)

	if _, errs, code := kilnCmd(t, dir, "version", "revoke", "appserver-1", "--reason", "x", "--at", "soon"); code != 1 || !strings.Contains(errs, "--at") {
		t.Fatalf("--at soon: exit %d, %s", code, errs)
	}
	out, errs, code := kilnCmd(t, dir, "version", "revoke", "appserver-1", "--reason", "end of support", "--at", "2099-01-01T00:00:00Z")
	if code != 0 || !strings.Contains(out, "appserver-1 will be revoked at 2099-01-01T00:00:00Z") {
		t.Fatalf("schedule: exit %d, %s\n%s", code, errs, out)
	}
	out, _, _ = kilnCmd(t, dir, "version", "revocations")
	if !strings.Contains(out, "appserver-1") || !strings.Contains(out, "end of support") || !strings.Contains(out, "2099-01-01T00:00:00Z") {
		t.Fatalf("revocations:\n%s", out)
	}
	if out, errs, code := kilnCmd(t, dir, "version", "cancel-revocation", "appserver-1"); code != 0 || !strings.Contains(out, "cancelled") {
		t.Fatalf("cancel: exit %d, %s\n%s", code, errs, out)
	}
	if out, _, _ := kilnCmd(t, dir, "version", "revocations"); out != "no scheduled revocations\n" {
		t.Fatalf("revocations after cancel:\n%s", out)
	}
}

// `kiln version status IMAGE-N revoked` revokes through ancestry as
// `kiln version revoke` does, and lists the versions revoked with it.
func TestVersionStatusRevokedListsDescendants(t *testing.T) {
	dir := t.TempDir()
	revocationEstate(t, dir)
	out, errs, code := kilnCmd(t, dir, "version", "status", "basic-linux-1", "revoked", "--reason", "CVE-2026-2")
	want := "basic-linux-1 is now revoked\n" +
		"revoked with it, through ancestry (built on basic-linux-1):\n" +
		"  appserver-1 (was ready) through basic-linux-1\n" +
		"  worker-1 (was ready) through basic-linux-1\n"
	if code != 0 || out != want {
		t.Fatalf("status revoked: exit %d, stderr %s, stdout:\n%s\nwant:\n%s", code, errs, out, want)
	}
	if out, _, _ := kilnCmd(t, dir, "version", "show", "worker-1"); !strings.Contains(out, "Status:    revoked") {
		t.Errorf("show worker-1 after status revoked:\n%s", out)
	}
}
