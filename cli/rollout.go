package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/rollout"
)

// engine builds the rollout engine on the opened services.
func (a *App) engine(cmd *cobra.Command, svc *Services, ss kiln.ServiceStore, rs kiln.RolloutStore) *rollout.Engine {
	return &rollout.Engine{Services: ss, Rollouts: rs, Registry: svc.Registry, Platform: svc.Platform, Inventory: svc.Inventory,
		Logger: a.Logger(), Progress: cmd.ErrOrStderr(), Check: a.launchCheck(svc)}
}

func (a *App) rolloutCmd() *cobra.Command {
	var (
		to           string
		resume       bool
		allowUnready bool
	)
	c := &cobra.Command{
		Use:   "rollout SERVICE [--to IMAGE-N]",
		Short: "Replace a service's instances with a new version, batch by batch, rolling back on failure",
		Long: "Launches instances of the new version in batches (--max-surge of the service), waits for their health checks, puts them in the front end, " +
			"watches them for the bake time, then drains and destroys old instances. A failed health check or a rising error rate rolls back: " +
			"the old version serves again and the new instances are destroyed. An interrupted rollout is continued with --resume.\n\n" +
			"Without --to, the version is the service environment's channel version, or else the image's latest ready version.",
		Args: exactArgs(1, "the service name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			svc, ss, rs, err := a.rolloutServices(ctx)
			if err != nil {
				return err
			}
			s, err := ss.FindService(ctx, args[0])
			if err != nil {
				return err
			}
			if err := a.startFrontEnd(ctx, s); err != nil {
				return err
			}
			e := a.engine(cmd, svc, ss, rs)
			var r *kiln.Rollout
			if resume {
				r, err = e.Resume(ctx, s.Name)
			} else {
				var ref kiln.VersionRef
				if to != "" {
					if ref, err = kiln.ParseVersionRef("--to", to); err != nil {
						return err
					}
				} else {
					ch, _ := svc.Registry.(kiln.ChannelStore)
					v, why, err := rollout.Target(ctx, svc.Registry, ch, s)
					if err != nil {
						return err
					}
					if v == nil {
						return kiln.FieldErrorf(kiln.EINVALID, "--to", "%s has no ready version and %s has no channel version; give --to %s-N", s.Image, s.Environment, s.Image)
					}
					ref = v.Ref()
					fmt.Fprintf(cmd.ErrOrStderr(), "rolling out %s (%s)\n", ref, why)
				}
				r, err = e.Start(ctx, s.Name, ref, rollout.Options{AllowUnready: allowUnready})
			}
			if r != nil && a.cfg.Output == FormatJSON {
				if jerr := writeJSON(cmd.OutOrStdout(), r); jerr != nil {
					return jerr
				}
			} else if r != nil {
				var times []string
				for _, d := range r.BatchTimes {
					times = append(times, d.Round(time.Millisecond).String())
				}
				fmt.Fprintf(cmd.OutOrStdout(), "rollout %d of %s to %s: %s after %s (batches: %s)\n", r.ID, r.Service, r.To, r.State,
					r.UpdatedAt.Sub(r.StartedAt).Round(time.Millisecond), strings.Join(times, ", "))
				if r.Reason != "" && r.State != kiln.RolloutSucceeded {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s\n", r.Reason)
				}
			}
			if err != nil {
				return err
			}
			if r.State != kiln.RolloutSucceeded {
				return &exitStatus{ExitUser}
			}
			return nil
		},
	}
	c.Flags().StringVar(&to, "to", "", "version to roll out, IMAGE-N (default: the environment's channel version, else the latest ready)")
	c.Flags().BoolVar(&resume, "resume", false, "continue the service's interrupted rollout (forward, or its rollback)")
	c.Flags().BoolVar(&allowUnready, "allow-unready", false, "allow a tested version that is not ready yet")
	return c
}

func (a *App) fleetRefreshCmd() *cobra.Command {
	var (
		opts   rollout.RefreshOptions
		maxAge string
		apply  bool
	)
	c := &cobra.Command{
		Use:   "refresh [--env ENV] [--advisory ID] [--max-age 90d] [--apply]",
		Short: "Plan (and with --apply run) the rollouts that bring exposed, over-age, stale and tainted instances onto a good version",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if maxAge != "" {
				age, err := kiln.ParseMaxAge("--max-age", maxAge)
				if err != nil {
					return err
				}
				opts.MaxAge = age.Duration()
			}
			svc, ss, rs, err := a.rolloutServices(ctx)
			if err != nil {
				return err
			}
			ch, _ := svc.Registry.(kiln.ChannelStore)
			ref := &rollout.Refresh{Services: ss, Registry: svc.Registry, Inventory: svc.Inventory, Advisories: svc.Advisories, Fleet: svc.Fleet, Channels: ch}
			plan, err := ref.Plan(ctx, opts)
			if err != nil {
				return err
			}
			var applyErr error
			if apply {
				for _, it := range plan.Items {
					if it.To.IsZero() {
						continue
					}
					s, err := ss.FindService(ctx, it.Service)
					if err != nil {
						return err
					}
					if err := a.startFrontEnd(ctx, s); err != nil {
						return err
					}
				}
				applyErr = ref.Apply(ctx, a.engine(cmd, svc, ss, rs), plan)
			}
			if a.cfg.Output == FormatJSON {
				if err := writeJSON(cmd.OutOrStdout(), plan); err != nil {
					return err
				}
				return applyErr
			}
			w := cmd.OutOrStdout()
			if len(plan.Items) == 0 {
				fmt.Fprintln(w, "nothing to refresh: every service instance is on a good version")
			}
			t := newTable(w, "SERVICE", "ENV", "INSTANCES", "RUNS", "ROLL OUT", "WHY", "RESULT")
			for _, it := range plan.Items {
				target := it.To.String()
				if it.To.IsZero() {
					target = "blocked: " + it.Blocked
				}
				result := "planned"
				if it.Result != nil {
					result = string(it.Result.State)
				} else if apply && !it.To.IsZero() {
					result = "not run"
				}
				t.row(it.Service, it.Environment, fmt.Sprint(it.Instances), strings.Join(it.Versions, ","), target, strings.Join(it.Reasons, "; "), result)
			}
			if err := t.flush(); err != nil {
				return err
			}
			for _, n := range plan.Notes {
				fmt.Fprintln(w, "note: "+n)
			}
			if !apply && len(plan.Items) > 0 {
				fmt.Fprintln(w, "run again with --apply to roll these out")
			}
			return applyErr
		},
	}
	c.Flags().StringVar(&opts.Environment, "env", "", "only services of this environment")
	c.Flags().StringVar(&opts.Advisory, "advisory", "", "advisory id whose fixed-in versions instances must reach")
	c.Flags().StringVar(&maxAge, "max-age", "", "age limit, e.g. 90d (default: the environments' age policies)")
	c.Flags().BoolVar(&apply, "apply", false, "run the planned rollouts, one service after the other")
	return c
}
