package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// lineage builds the estate of issue 18: basic-linux-1 and -2 (ready),
// appserver-1 and container-node-1 built on basic-linux-2, appserver-2 a
// reheat of appserver-1, worker-1 built on appserver-1, and versions that
// must not be touched: other-1 on basic-linux-1, a failed version on
// basic-linux-2.
type lineage struct {
	bl1, bl2, app1, app2, node1, worker1, other1, broken *kiln.Version
}

func mkLineage(t *testing.T, e *env) *lineage {
	t.Helper()
	ctx := context.Background()
	for _, img := range []string{"basic-linux", "appserver", "container-node", "worker", "other"} {
		mkImage(t, e.DB, img)
	}
	l := &lineage{}
	l.bl1 = readyVersion(t, e, "basic-linux")
	l.bl2 = readyVersion(t, e, "basic-linux")
	on := func(image string, base *kiln.Version, status kiln.Status) *kiln.Version {
		t.Helper()
		b := base.Ref()
		v := mkVersion(t, e.DB, &kiln.NewVersion{Image: image, Provenance: kiln.Provenance{Base: &b}})
		switch status {
		case kiln.StatusReady:
			must[*kiln.Version](t)(e.SetStatus(ctx, v.Ref(), kiln.StatusTested, ""))
			return must[*kiln.Version](t)(e.SetStatus(ctx, v.Ref(), kiln.StatusReady, ""))
		case kiln.StatusTested, kiln.StatusFailed:
			return must[*kiln.Version](t)(e.SetStatus(ctx, v.Ref(), status, ""))
		}
		return v
	}
	l.app1 = on("appserver", l.bl2, kiln.StatusReady)
	p := l.app1.Ref()
	l.app2 = mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{Method: kiln.MethodReheat, Parent: &p}})
	l.node1 = on("container-node", l.bl2, kiln.StatusReady)
	l.worker1 = on("worker", l.app1, kiln.StatusTested)
	l.other1 = on("other", l.bl1, kiln.StatusReady)
	l.broken = on("container-node", l.bl2, kiln.StatusFailed)
	return l
}

func statusOf(t *testing.T, e *env, v *kiln.Version) *kiln.Version {
	t.Helper()
	return must[*kiln.Version](t)(e.FindVersion(context.Background(), v.Ref()))
}

func TestRevokeFollowsAncestry(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "alice")
		l := mkLineage(t, e)
		head := auditHead(t, e)

		// Revoking through SetStatus is the same as Revoke.
		got := must[*kiln.Version](t)(e.SetStatus(ctx, l.bl2.Ref(), kiln.StatusRevoked, "CVE-2026-1234 in openssl"))
		if !got.Revoked() || got.Revocation == nil || got.Revocation.Through != nil || got.Revocation.Actor != "alice" || got.Revocation.Previous != kiln.StatusReady {
			t.Fatalf("basic-linux-2 after revoking: %+v %+v", got, got.Revocation)
		}
		for _, v := range []*kiln.Version{l.app1, l.app2, l.node1, l.worker1} {
			f := statusOf(t, e, v)
			r := f.Revocation
			if !f.Revoked() || r == nil || r.Through == nil || *r.Through != l.bl2.Ref() || r.Reason != "CVE-2026-1234 in openssl" || r.Actor != "alice" || r.Previous != v.Status {
				t.Errorf("%s: status %s, revocation %+v; want revoked through basic-linux-2, previous %s", v.Name, f.Status, r, v.Status)
			}
			msg := kiln.RevokedError(f).Error()
			wantContains(t, msg, f.Name+" is revoked through its ancestor basic-linux-2", "CVE-2026-1234", "alice")
		}
		for _, v := range []*kiln.Version{l.bl1, l.other1, l.broken} {
			if f := statusOf(t, e, v); f.Status != v.Status || f.Revocation != nil {
				t.Errorf("%s: %s %+v; want it untouched (%s)", v.Name, f.Status, f.Revocation, v.Status)
			}
		}
		acts := auditActions(t, e, head)
		if strings.Join(acts, " ") != "version.status version.revoke.ancestry version.revoke.ancestry version.revoke.ancestry version.revoke.ancestry" {
			t.Errorf("audit: %q", acts)
		}
		hs := must[[]*kiln.HistoryEntry](t)(e.History(ctx, l.worker1.Ref()))
		last := hs[len(hs)-1]
		if last.To != "revoked" || last.Actor != "alice" || !strings.Contains(last.Reason, "revoked through basic-linux-2: CVE-2026-1234") {
			t.Errorf("worker-1's last history entry: %+v", last)
		}

		// latest skips revoked versions, and says so when nothing is left.
		if v := must[*kiln.Version](t)(e.LatestVersion(ctx, "basic-linux", "")); v.Name != "basic-linux-1" {
			t.Errorf("latest basic-linux = %s; want basic-linux-1", v.Name)
		}
		if v := must[*kiln.Version](t)(e.LatestVersion(ctx, "basic-linux", kiln.StatusReady)); v.Name != "basic-linux-1" {
			t.Errorf("latest ready basic-linux = %s; want basic-linux-1", v.Name)
		}
		_, err := e.LatestVersion(ctx, "appserver", "")
		wantContains(t, wantCode(t, err, kiln.ENOTFOUND), "every version of appserver is revoked")

		// Revoking again is refused; a version revoked through an
		// ancestor can be revoked itself.
		_, err = e.Revoke(ctx, l.bl2.Ref(), "again")
		wantContains(t, wantCode(t, err, kiln.ECONFLICT), "revoked already")
		_, err = e.Revoke(ctx, ref("worker", 1), "")
		if err != nil {
			t.Fatalf("revoke worker-1 itself: %v", err)
		}
		if r := statusOf(t, e, l.worker1).Revocation; r.Through != nil || r.Previous != kiln.StatusTested {
			t.Errorf("worker-1 revoked itself: %+v", r)
		}
		_, err = e.Revoke(ctx, l.other1.Ref(), strings.Repeat("x", 2000))
		wantCode(t, err, kiln.EINVALID)
	})
}

func TestRestoreKeepsOtherRevocations(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "bob")
		l := mkLineage(t, e)
		must[[]*kiln.Revocation](t)(e.Revoke(ctx, l.bl2.Ref(), "CVE-2026-1234"))
		// appserver-1 is also revoked itself, for its own reason.
		must[[]*kiln.Revocation](t)(e.Revoke(ctx, l.app1.Ref(), "leaked key"))

		_, err := e.Restore(ctx, l.node1.Ref(), "")
		wantContains(t, wantCode(t, err, kiln.ECONFLICT), "revoked through its ancestor basic-linux-2", "restore basic-linux-2")
		_, err = e.Restore(ctx, l.bl1.Ref(), "")
		wantContains(t, wantCode(t, err, kiln.ECONFLICT), "not revoked")

		restored := must[[]kiln.VersionRef](t)(e.Restore(ctx, l.bl2.Ref(), "false alarm"))
		if len(restored) != 2 || restored[0] != l.bl2.Ref() || restored[1] != l.node1.Ref() {
			t.Errorf("restored %v; want basic-linux-2 and container-node-1", restored)
		}
		if f := statusOf(t, e, l.bl2); f.Status != kiln.StatusReady || f.Revocation != nil {
			t.Errorf("basic-linux-2: %s %+v", f.Status, f.Revocation)
		}
		// Still revoked through appserver-1, which is revoked itself.
		for _, v := range []*kiln.Version{l.app2, l.worker1} {
			f := statusOf(t, e, v)
			if !f.Revoked() || f.Revocation.Through == nil || *f.Revocation.Through != l.app1.Ref() {
				t.Errorf("%s: %s %+v; want still revoked through appserver-1", v.Name, f.Status, f.Revocation)
			}
		}
		must[[]kiln.VersionRef](t)(e.Restore(ctx, l.app1.Ref(), "key rotated"))
		for _, v := range []*kiln.Version{l.app1, l.app2, l.worker1, l.node1} {
			if f := statusOf(t, e, v); f.Status != v.Status {
				t.Errorf("%s is %s after both restores; want %s", v.Name, f.Status, v.Status)
			}
		}
		hs := must[[]*kiln.HistoryEntry](t)(e.History(ctx, l.worker1.Ref()))
		if last := hs[len(hs)-1]; last.From != "revoked" || last.To != "tested" || last.Actor != "bob" {
			t.Errorf("worker-1's last history entry: %+v", last)
		}
	})
}

func TestChannelFallsBackFromRevoked(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "alice")
		l := mkLineage(t, e)
		must[*kiln.Promotion](t)(e.Promote(ctx, l.bl1.Ref(), "prod", "", ""))
		must[*kiln.Promotion](t)(e.Promote(ctx, l.bl2.Ref(), "prod", "", ""))
		must[*kiln.Promotion](t)(e.Promote(ctx, l.app1.Ref(), "prod", "", ""))
		must[[]*kiln.Revocation](t)(e.Revoke(ctx, l.bl2.Ref(), "CVE-2026-1234"))

		c := must[*kiln.Channel](t)(e.FindChannel(ctx, "basic-linux", "prod"))
		if c.Version != l.bl1.Ref() || c.Name != "basic-linux-1" || c.Revoked == nil || *c.Revoked != l.bl2.Ref() {
			t.Errorf("prod of basic-linux resolves to %+v; want basic-linux-1, having skipped basic-linux-2", c)
		}
		// appserver's channel never held anything else: a refusal, not
		// an empty answer.
		_, err := e.FindChannel(ctx, "appserver", "prod")
		wantContains(t, wantCode(t, err, kiln.ECONFLICT), "points at appserver-1, which is revoked through basic-linux-2", "kiln promote appserver-N --to prod")
		// The stored pointer is unchanged: a restore brings it back.
		must[[]kiln.VersionRef](t)(e.Restore(ctx, l.bl2.Ref(), ""))
		if c := must[*kiln.Channel](t)(e.FindChannel(ctx, "appserver", "prod")); c.Version != l.app1.Ref() || c.Revoked != nil {
			t.Errorf("after restore: %+v", c)
		}
	})
}

func TestScheduledRevocation(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "carol")
		l := mkLineage(t, e)
		now := e.clock.Now()
		_, err := e.ScheduleRevocation(ctx, l.bl1.Ref(), now.Add(-time.Minute), "")
		wantContains(t, wantCode(t, err, kiln.EINVALID), "not in the future")
		_, err = e.ScheduleRevocation(ctx, l.app2.Ref(), now.Add(time.Hour), "")
		wantContains(t, wantCode(t, err, kiln.ECONFLICT), "candidate")

		s := must[*kiln.ScheduledRevocation](t)(e.ScheduleRevocation(ctx, l.bl1.Ref(), now.Add(time.Hour), "end of support"))
		if s.Actor != "carol" || s.Version != l.bl1.Ref() {
			t.Errorf("scheduled: %+v", s)
		}
		must[*kiln.ScheduledRevocation](t)(e.ScheduleRevocation(ctx, l.node1.Ref(), now.Add(2*time.Hour), ""))
		must[*kiln.ScheduledRevocation](t)(e.ScheduleRevocation(ctx, l.app1.Ref(), now.Add(3*time.Hour), ""))
		if err := e.CancelScheduledRevocation(ctx, l.app1.Ref()); err != nil {
			t.Fatal(err)
		}
		wantCode(t, e.CancelScheduledRevocation(ctx, l.app1.Ref()), kiln.ENOTFOUND)
		list := must[[]*kiln.ScheduledRevocation](t)(e.ScheduledRevocations(ctx))
		if len(list) != 2 || list[0].Version != l.bl1.Ref() || list[1].Version != l.node1.Ref() {
			t.Fatalf("scheduled: %+v", list)
		}

		if rs := must[[]*kiln.Revocation](t)(e.ApplyDueRevocations(context.Background())); len(rs) != 0 {
			t.Errorf("applied %d revocations before their time", len(rs))
		}
		// container-node-1 is revoked itself before its time: its
		// schedule is dropped, not an error. (Revoked only through an
		// ancestor, it would become revoked in its own right.)
		must[[]*kiln.Revocation](t)(e.Revoke(ctx, l.node1.Ref(), "CVE"))
		e.clock.advance(3 * time.Hour)
		head := auditHead(t, e)
		rs := must[[]*kiln.Revocation](t)(e.ApplyDueRevocations(kiln.WithActor(context.Background(), "server")))
		if len(rs) != 2 || rs[0].Version != l.bl1.Ref() || rs[0].Actor != "carol" || rs[1].Version != l.other1.Ref() || *rs[1].Through != l.bl1.Ref() {
			t.Errorf("applied %+v; want basic-linux-1 and other-1 through it, as carol", rs)
		}
		if acts := auditActions(t, e, head); strings.Join(acts, " ") != "version.status version.revoke.ancestry version.revoke.schedule" {
			t.Errorf("audit: %q", acts)
		}
		if list := must[[]*kiln.ScheduledRevocation](t)(e.ScheduledRevocations(ctx)); len(list) != 0 {
			t.Errorf("still scheduled: %+v", list)
		}
	})
}

func TestCreateVersionsAllOrNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "web")
		ext := func(id string) *kiln.NewVersion {
			return &kiln.NewVersion{Image: "web", Tags: kiln.Tags{"packer_run_uuid": id}, Provenance: kiln.Provenance{
				Method:   kiln.MethodExternal,
				Artifact: &kiln.Artifact{Ref: "packer:amazon-ebs:eu-west-1:ami-" + id},
			}}
		}
		before := e.counts(t)
		_, err := e.CreateVersions(ctx, []*kiln.NewVersion{ext("a1"), {Image: "nope"}, ext("a3")})
		if kiln.ErrorCode(err) == "" {
			t.Fatal("a batch with an unknown image was accepted")
		}
		bad := ext("a4")
		bad.Provenance.Method = kiln.MethodFresh
		_, err = e.CreateVersions(ctx, []*kiln.NewVersion{ext("a1"), bad})
		if f := kiln.ErrorField(wantErr(t, err)); f != "versions[1].artifact.digest" {
			t.Errorf("field %q; want versions[1].artifact.digest (only external artifacts may lack a digest)", f)
		}
		e.unchanged(t, before)

		vs := must[[]*kiln.Version](t)(e.CreateVersions(ctx, []*kiln.NewVersion{ext("a1"), ext("a2")}))
		if len(vs) != 2 || vs[1].Number != 2 {
			t.Fatalf("created %+v", vs)
		}
		f := must[*kiln.Version](t)(e.FindVersion(ctx, vs[0].Ref()))
		if f.Provenance.Method != kiln.MethodExternal || !f.Provenance.Artifact.External() || f.Provenance.Artifact.Ref != "packer:amazon-ebs:eu-west-1:ami-a1" {
			t.Errorf("stored %+v", f.Provenance)
		}
		if e.kind == "sqlite" {
			// Migration 0011 edits the CHECK constraint in place.
			var ok string
			if err := e.raw.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
				t.Errorf("integrity_check after migration 0011: %q, %v", ok, err)
			}
			_, err := e.raw.Exec(`INSERT INTO provenance (version_id, method) VALUES (?, 'bogus')`, f.ID+1000)
			wantContains(t, errText(err), "CHECK constraint failed")
		}
	})
}

func wantErr(t *testing.T, err error) error {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	return err
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
