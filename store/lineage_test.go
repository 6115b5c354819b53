package store

import (
	"context"
	"testing"

	"github.com/kiln-project/kiln"
)

func TestLineage(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		promote := func(r kiln.VersionRef) {
			t.Helper()
			for _, s := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
				if _, err := e.SetStatus(ctx, r, s, ""); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, name := range []string{"basic-linux", "appserver", "container-node"} {
			mkImage(t, e.DB, name)
		}
		if ls := must[[]*kiln.Lineage](t)(e.Lineage(ctx)); len(ls) != 0 {
			t.Fatalf("lineage of an empty registry: %v", ls)
		}
		mkVersion(t, e.DB, &kiln.NewVersion{Image: "basic-linux"})
		promote(ref("basic-linux", 1))
		base1 := &kiln.VersionRef{Image: "basic-linux", Number: 1}
		mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{Base: base1}})
		mkVersion(t, e.DB, &kiln.NewVersion{Image: "container-node", Provenance: kiln.Provenance{Base: base1}})

		ls := must[[]*kiln.Lineage](t)(e.Lineage(ctx))
		if len(ls) != 2 || ls[0].Child.Name != "appserver-1" || ls[1].Child.Name != "container-node-1" {
			t.Fatalf("lineage = %+v", ls)
		}
		for _, l := range ls {
			if l.Base != *base1 || l.LatestBaseReady == nil || *l.LatestBaseReady != *base1 || l.OutOfDate {
				t.Errorf("%s: base %v, latest ready %v, out of date %v; want basic-linux-1, basic-linux-1, false", l.Child.Name, l.Base, l.LatestBaseReady, l.OutOfDate)
			}
		}

		// A new base that is only a candidate does not make children out of date.
		mkVersion(t, e.DB, &kiln.NewVersion{Image: "basic-linux"})
		if ls := must[[]*kiln.Lineage](t)(e.Lineage(ctx)); ls[0].OutOfDate {
			t.Errorf("out of date against a candidate base")
		}
		promote(ref("basic-linux", 2))
		// appserver is rebuilt on basic-linux-2; container-node is not.
		mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{Base: &kiln.VersionRef{Image: "basic-linux", Number: 2}}})
		ls = must[[]*kiln.Lineage](t)(e.Lineage(ctx))
		if len(ls) != 2 {
			t.Fatalf("lineage = %+v", ls)
		}
		if l := ls[0]; l.Child.Name != "appserver-2" || l.Base.Number != 2 || l.LatestBaseReady.Number != 2 || l.OutOfDate {
			t.Errorf("appserver: %s on %v, latest ready %v, out of date %v; want appserver-2 on basic-linux-2, up to date", l.Child.Name, l.Base, l.LatestBaseReady, l.OutOfDate)
		}
		if l := ls[1]; l.Child.Name != "container-node-1" || l.Base.Number != 1 || l.LatestBaseReady.Number != 2 || !l.OutOfDate {
			t.Errorf("container-node: %s on %v, latest ready %v, out of date %v; want container-node-1 on basic-linux-1, out of date", l.Child.Name, l.Base, l.LatestBaseReady, l.OutOfDate)
		}
		if ls[0].Child.Tags["Name"] != "appserver" {
			t.Errorf("lineage child lacks system tags: %v", ls[0].Child.Tags)
		}
	})
}
