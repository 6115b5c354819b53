package main

import (
	"context"
	"fmt"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/platform/local"
)

// reconcileLocal returns a function that brings the inventory in line with
// the local platform: an instance recorded as running whose supervisor died
// (kill -9, reboot) becomes crashed, one that was stopped becomes stopped,
// and one whose state is gone from the platform altogether becomes
// destroyed. Instances of other platforms are not touched.
func reconcileLocal(plat *local.Platform, inv kiln.Inventory) func(context.Context) error {
	return func(ctx context.Context) error {
		seen, err := plat.Reconcile(ctx)
		if err != nil {
			return err
		}
		byID := make(map[string]local.InstanceStatus, len(seen))
		for _, s := range seen {
			byID[s.ID] = s
		}
		recorded, _, err := inv.ListInstances(ctx, kiln.InstanceFilter{Platform: plat.Name()})
		if err != nil {
			return err
		}
		for _, inst := range recorded {
			s, ok := byID[inst.ID]
			want, reason := s.State, s.Reason
			if !ok {
				want, reason = kiln.InstanceDestroyed, "no longer on the local platform"
			}
			if want == "" || want == inst.State {
				continue
			}
			if reason == "" {
				reason = fmt.Sprintf("the local platform reports it %s", want)
			}
			if _, err := inv.SetInstanceState(ctx, inst.ID, want, "reconciled: "+reason); err != nil {
				return err
			}
		}
		return nil
	}
}
