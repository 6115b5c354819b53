package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/autopilot"
	"github.com/kiln-project/kiln/fleet"
	"github.com/kiln-project/kiln/rollout"
)

// rolloutHost returns where rollouts run: the kiln server when the
// services are remote, else this machine, running rollouts in this
// process and printing their progress on stderr.
func (a *App) rolloutHost(cmd *cobra.Command) (RolloutHost, error) {
	svc, _, _, err := a.rolloutServices(cmd.Context())
	if err != nil {
		return nil, err
	}
	if svc.Rollouts == nil {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this kiln setup runs no rollouts; run the command on the machine with the platform, or through its kiln server (--server)")
	}
	return svc.Rollouts(cmd.ErrOrStderr()), nil
}

// followInterval is how often a rollout on the server is polled.
const followInterval = 500 * time.Millisecond

// followRetry is how long a follow keeps asking a server that does not
// answer (a restart, a network blip) before it gives up; the waits
// between the tries grow from followInterval to followMaxBackoff.
var followRetry = time.Minute

const followMaxBackoff = 8 * time.Second

// roll starts a rollout and returns it ended: one that runs elsewhere (on
// the kiln server) is followed, its progress lines printed on stderr as a
// local rollout prints them, and its error returned as the local one
// would be. Interrupting the follow does not stop the rollout.
func (a *App) roll(ctx context.Context, cmd *cobra.Command, h RolloutHost, req kiln.RolloutRequest) (*kiln.Rollout, error) {
	r, err := h.StartRollout(ctx, req)
	if err != nil || r == nil || r.State.Done() {
		return r, err
	}
	stderr := cmd.ErrOrStderr()
	after := 0
	var lost time.Time // when the server stopped answering; zero while it answers
	wait := followInterval
	for {
		p, err := h.RolloutProgress(ctx, r.ID, after)
		switch {
		case ctx.Err() != nil:
			return r, kiln.Errorf(kiln.EUNAVAILABLE, "stopped following rollout %d of %s; it keeps running on the server: see it with `kiln service show %s`",
				r.ID, r.Service, r.Service)
		case err != nil && kiln.ErrorCode(err) == kiln.EUNAVAILABLE:
			if lost.IsZero() {
				lost = time.Now()
				fmt.Fprintf(stderr, "lost the kiln server (%s); retrying for %s\n", kiln.ErrorMessage(err), followRetry)
			} else if time.Since(lost) >= followRetry {
				return r, kiln.Errorf(kiln.EUNAVAILABLE, "lost the kiln server for %s while following rollout %d of %s (%s); a server that stopped interrupted the rollout: when it is back, see it with `kiln service show %s` and resume it with `kiln rollout %s --resume`",
					followRetry, r.ID, r.Service, kiln.ErrorMessage(err), r.Service, r.Service)
			}
			wait = min(2*wait, followMaxBackoff)
		case err != nil:
			return r, err
		default:
			if !lost.IsZero() {
				fmt.Fprintf(stderr, "the kiln server answers again; following rollout %d\n", r.ID)
				lost, wait = time.Time{}, followInterval
			}
			for _, l := range p.Lines {
				fmt.Fprintln(stderr, l)
			}
			after, r = p.Next, p.Rollout
			if !p.Running {
				switch {
				case p.Error != "":
					return r, &kiln.Error{Code: p.Code, Message: p.Error}
				case !r.State.Done():
					// Not running on the server that answers (it stopped,
					// or was restarted) and not ended: interrupted.
					return r, kiln.Errorf(kiln.EUNAVAILABLE, "rollout %d of %s was interrupted on the server (%s, %d batches done); resume it with `kiln rollout %s --resume`",
						r.ID, r.Service, r.State, r.Batch, r.Service)
				}
				return r, nil
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
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
			"Without --to, the version is the service environment's channel version, or else the image's latest ready version.\n\n" +
			"With --server, the kiln server runs the rollout on its machine and this command follows it to the end; " +
			"interrupting the command does not stop the rollout.",
		Args: exactArgs(1, "the service name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			req := kiln.RolloutRequest{Service: args[0], AllowUnready: allowUnready, Resume: resume}
			if to != "" {
				ref, err := kiln.ParseVersionRef("--to", to)
				if err != nil {
					return err
				}
				req.To = ref
			}
			h, err := a.rolloutHost(cmd)
			if err != nil {
				return err
			}
			r, err := a.roll(ctx, cmd, h, req)
			if r != nil {
				if jerr := a.render(cmd.OutOrStdout(), r, func(w io.Writer) error {
					var times []string
					for _, d := range r.BatchTimes {
						times = append(times, d.Round(time.Millisecond).String())
					}
					fmt.Fprintf(w, "rollout %d of %s to %s: %s after %s (batches: %s)\n", r.ID, r.Service, r.To, r.State,
						r.UpdatedAt.Sub(r.StartedAt).Round(time.Millisecond), strings.Join(times, ", "))
					if r.Reason != "" && r.State != kiln.RolloutSucceeded {
						fmt.Fprintf(w, "  %s\n", r.Reason)
					}
					return nil
				}); jerr != nil {
					return jerr
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
		estate string
		noRun  bool
	)
	c := &cobra.Command{
		Use:   "refresh [--env ENV] [--advisory ID] [--max-age 90d] [--apply [--estate DIR] [--no-run]]",
		Short: "Plan (and with --apply run) the rollouts that bring exposed, over-age, stale and tainted instances onto a good version",
		Long: "Plans a rollout per service whose instances are exposed to --advisory, over age, stale or tainted.\n" +
			"With --apply, when no ready version has an advisory's fix, it first starts the image's pipeline run\n" +
			"(build with fresh packages, test, scan, deliver), waits for it, then rolls the services out one after\n" +
			"the other. Instances that belong to no service are listed with the commands that would replace them.\n" +
			"A person's --apply rolls out at once, outside the services' update windows and past their rollout\n" +
			"limits too, as `kiln rollout` does (kiln serve's autopilot waits for them; docs/rollout.md).",
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if maxAge != "" {
				age, err := kiln.ParseMaxAge("--max-age", maxAge)
				if err != nil {
					return err
				}
				opts.MaxAge = age.Duration()
			}
			svc, ss, _, err := a.rolloutServices(ctx)
			if err != nil {
				return err
			}
			fl := fleet.New(svc.Fleet, svc.Advisories)
			fl.Channels = svc.Channels
			ref := &rollout.Refresh{Services: ss, Registry: svc.Registry, Inventory: svc.Inventory, Advisories: svc.Advisories, Fleet: svc.Fleet, Channels: svc.Channels, Exposure: fl}
			progress := a.progress(cmd)
			rf := &autopilot.Refresher{Plan: ref, Runs: svc.Pipeline, Progress: progress}
			if apply {
				h, err := a.rolloutHost(cmd)
				if err != nil {
					return err
				}
				rf.Roll = func(ctx context.Context, req kiln.RolloutRequest) (*kiln.Rollout, error) {
					return a.roll(ctx, cmd, h, req)
				}
				if !noRun {
					a.fixRuns(rf, svc, estate, progress)
				}
			}
			out, applyErr := rf.Refresh(ctx, opts, apply)
			if out == nil {
				return applyErr
			}
			plan := out.RefreshPlan
			if err := a.render(cmd.OutOrStdout(), out, func(w io.Writer) error {
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
				for _, run := range out.Runs {
					fmt.Fprintf(w, "run %d: %s\n", run.ID, autopilot.RunSummary(run))
				}
				if len(plan.Loose) > 0 {
					fmt.Fprintln(w, "instances outside services (refresh does not replace them; these commands would):")
					for _, l := range plan.Loose {
						how := l.Command
						if how == "" {
							how = "no good version to replace it with yet"
						}
						fmt.Fprintf(w, "  %s (%s, %s): %s\n    %s\n", l.Name, l.Environment, l.Version, strings.Join(l.Reasons, "; "), how)
					}
				}
				for _, n := range plan.Notes {
					fmt.Fprintln(w, "note: "+n)
				}
				if !apply && len(plan.Items) > 0 {
					fmt.Fprintln(w, "run again with --apply to roll these out (and start the pipeline runs that build missing fixes)")
				}
				return nil
			}); err != nil {
				return err
			}
			return applyErr
		},
	}
	c.Flags().StringVar(&estate, "estate", "", "estate directory (with --server: a registered estate's name) to build missing fixes from (default: the estate of the image's last run)")
	c.Flags().BoolVar(&noRun, "no-run", false, "with --apply, do not start pipeline runs: services without a ready fix stay blocked")
	c.Flags().StringVar(&opts.Environment, "env", "", "only services of this environment")
	c.Flags().StringVar(&opts.Advisory, "advisory", "", "advisory id whose fixed-in versions instances must reach")
	c.Flags().StringVar(&maxAge, "max-age", "", "age limit, e.g. 90d (default: the environments' age policies)")
	c.Flags().BoolVar(&apply, "apply", false, "run the planned rollouts, one service after the other")
	return c
}

// fixRuns sets how rf makes missing fixes: on this machine, runs queued in
// the database and carried out in this process (their log on progress);
// through --server, runs started on the server from a registered estate
// and followed until they end.
func (a *App) fixRuns(rf *autopilot.Refresher, svc *Services, estate string, progress io.Writer) {
	if a.cfg.Server != "" {
		rf.StartRuns = func(ctx context.Context, image, trigger string) ([]*kiln.Run, error) {
			if estate == "" {
				return nil, kiln.FieldErrorf(kiln.EINVALID, "--estate", "no ready version of %s has the fix; name the registered estate that builds it (`kiln estate list` on the server) with --estate NAME, or pass --no-run", image)
			}
			return svc.RunStarter.StartRuns(ctx, kiln.RunRequest{Estate: estate, Images: []string{image}, Trigger: trigger})
		}
		rf.Wait = autopilot.PollRuns(svc.Pipeline, 2*time.Second, progress)
		return
	}
	if svc.Pipeline == nil || svc.Runner == nil {
		return
	}
	rf.StartRuns = autopilot.EstateRuns(svc.Pipeline, LoadEstate, estate, nil)
	rf.Wait = svc.Runner(progress).Wait
}
