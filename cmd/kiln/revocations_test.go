package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/store"
)

// The serve loop applies a scheduled revocation once its time has come,
// with the versions built on it, and stop waits for it.
func TestStartRevocationsAppliesDue(t *testing.T) {
	ctx := kiln.WithActor(context.Background(), "local:test")
	db, err := store.Open(ctx, "", t.TempDir(), nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var base *kiln.VersionRef
	var refs []kiln.VersionRef
	for _, img := range []string{"basic-linux", "appserver"} {
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
		base, refs = &r, append(refs, r)
	}
	if _, err := db.ScheduleRevocation(ctx, refs[0], time.Now().Add(200*time.Millisecond), "end of support"); err != nil {
		t.Fatal(err)
	}
	stop := startRevocations(ctx, db, 20*time.Millisecond, slog.New(slog.DiscardHandler))
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := db.FindVersion(ctx, refs[1])
		if err != nil {
			t.Fatal(err)
		}
		if v.Revoked() {
			if v.Revocation == nil || v.Revocation.Through == nil || *v.Revocation.Through != refs[0] || v.Revocation.Actor != "local:test" {
				t.Fatalf("appserver-1 revoked with %+v; want through basic-linux-1 by local:test", v.Revocation)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the scheduled revocation was not applied within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if ss, err := db.ScheduledRevocations(ctx); err != nil || len(ss) != 0 {
		t.Fatalf("scheduled after applying: %v %+v", err, ss)
	}
}
