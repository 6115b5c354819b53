package main

import (
	"context"
	"errors"
	"fmt"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/platform/vm"
)

// seen is one instance as its platform sees it now.
type seen struct {
	ID     string
	State  kiln.InstanceState
	Reason string
}

// reconcile brings the inventory in line with every platform that holds
// recorded instances: the local one always, the VM one when the inventory
// has instances on it (so a machine without QEMU is not asked for it).
func (g *graph) reconcile(ctx context.Context) error {
	var errs []error
	if g.plat != nil {
		errs = append(errs, reconcilePlatform(ctx, g.db, "local", func(ctx context.Context) ([]seen, error) {
			sts, err := g.plat.Reconcile(ctx)
			out := make([]seen, 0, len(sts))
			for _, s := range sts {
				out = append(out, seen{s.ID, s.State, s.Reason})
			}
			return out, err
		}))
	}
	live, _, err := g.db.ListInstances(ctx, kiln.InstanceFilter{Platform: "vm", Limit: 1,
		States: []kiln.InstanceState{kiln.InstanceStarting, kiln.InstanceRunning, kiln.InstanceDegraded, kiln.InstanceStopped}})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if len(live) > 0 {
		errs = append(errs, reconcilePlatform(ctx, g.db, "vm", func(ctx context.Context) ([]seen, error) {
			p, err := g.plats.Get("vm")
			if err != nil {
				return nil, err
			}
			sts, err := p.(*vm.Platform).Reconcile(ctx)
			out := make([]seen, 0, len(sts))
			for _, s := range sts {
				out = append(out, seen{s.ID, s.State, s.Reason})
			}
			return out, err
		}))
	}
	return errors.Join(errs...)
}

// reconcilePlatform brings the inventory in line with platform name: an
// instance recorded as running whose supervisor died (kill -9, reboot)
// becomes crashed, one that was stopped becomes stopped, and one whose
// state is gone from the platform altogether becomes destroyed. Instances
// of other platforms are not touched.
func reconcilePlatform(ctx context.Context, inv kiln.Inventory, name string, look func(context.Context) ([]seen, error)) error {
	sts, err := look(ctx)
	if err != nil {
		return err
	}
	byID := make(map[string]seen, len(sts))
	for _, s := range sts {
		byID[s.ID] = s
	}
	recorded, _, err := inv.ListInstances(ctx, kiln.InstanceFilter{Platform: name})
	if err != nil {
		return err
	}
	for _, inst := range recorded {
		s, ok := byID[inst.ID]
		want, reason := s.State, s.Reason
		if !ok {
			want, reason = kiln.InstanceDestroyed, "no longer on the "+name+" platform"
		}
		if want == "" || want == inst.State {
			continue
		}
		if reason == "" {
			reason = fmt.Sprintf("the %s platform reports it %s", name, want)
		}
		if _, err := inv.SetInstanceState(ctx, inst.ID, want, "reconciled: "+reason); err != nil {
			return err
		}
	}
	return nil
}
