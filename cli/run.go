package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/pipeline"
)

// PipelineStore is what the pipeline commands keep their state in.
type PipelineStore interface {
	kiln.RunStore
	kiln.ChannelStore
	kiln.WebhookStore
	pipeline.ScheduleStore
}

// pipelineServices opens the services and checks the pipeline store is there.
func (a *App) pipelineServices(ctx context.Context) (*Services, error) {
	svc, err := a.Services(ctx)
	if err != nil {
		return nil, err
	}
	if svc.Pipeline == nil {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this kiln has no pipeline store; run it against a kiln database")
	}
	return svc, nil
}

// LoadEstate reads an estate with variables set as --var would, the way
// the pipeline runner re-reads a run's estate.
func LoadEstate(dir string, vars map[string]string) (*definition.Estate, error) {
	opts := definition.Options{Vars: vars, Env: os.Environ()}
	est, diags := definition.Load(dir, opts)
	if diags.HasErrors() {
		return nil, &kiln.Error{Code: kiln.EINVALID, Message: fmt.Sprintf("estate %s has errors:\n%s", dir, strings.TrimRight(definition.FormatDiagnostics(diags), "\n"))}
	}
	return est, nil
}

// isEstate reports whether dir holds definition files.
func isEstate(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "*"+definition.FileSuffix))
	return len(m) > 0
}

func (a *App) runCmd() *cobra.Command {
	var (
		vf      varFlags
		estate  string
		all     bool
		force   bool
		detach  bool
		trigger string
	)
	c := &cobra.Command{
		Use:   "run [DIR] IMAGE…|--all",
		Short: "Run images' pipelines: build → test → scan → ready → delivery, in dependency order",
		Long: "Queues a run per image (a base image's run first; the images built on it wait for it and build on\n" +
			"the version it makes ready) and carries them through their stages in this process, printing the log.\n" +
			"An image with a queued run gets this trigger added to it instead (runs coalesce). With --detach the\n" +
			"runs are only queued, for `kiln serve` to run.\n\n" +
			"Examples:\n  kiln run --all examples/estate\n  kiln run examples/estate appserver\n  kiln run appserver --estate examples/estate",
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.cfg.Server != "" {
				return a.runRemote(cmd, estate, args, all, force, &vf)
			}
			if len(args) > 0 && estate == "" && isEstate(args[0]) {
				estate, args = args[0], args[1:]
			}
			if estate == "" {
				estate = "."
			}
			if all == (len(args) > 0) {
				return &usageError{fmt.Errorf("give image names or --all (got %d name(s), --all=%v)", len(args), all)}
			}
			est, err := vf.load(estate)
			if err != nil {
				return err
			}
			vars, err := vf.values()
			if err != nil {
				return err
			}
			svc, err := a.pipelineServices(cmd.Context())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			progress := a.progress(cmd)
			r := svc.Runner(progress)
			if _, err := r.Recover(ctx); err != nil {
				return err
			}
			if trigger == "" {
				trigger = "manual by " + kiln.ActorFrom(ctx)
			}
			runs, err := pipeline.Enqueue(ctx, svc.Pipeline, est, vars, args, trigger, force)
			if err != nil {
				return err
			}
			ids := make([]int64, len(runs))
			for i, run := range runs {
				ids[i] = run.ID
				fmt.Fprintf(progress, "==> run %d: %s queued (%s)\n", run.ID, run.Image, run.Trigger)
			}
			if !detach {
				if err := r.Wait(ctx, ids); err != nil {
					return err
				}
				a.sendWebhooks(ctx, svc)
			}
			return a.printRuns(cmd, svc, ids)
		},
	}
	vf.add(c)
	c.Flags().StringVar(&estate, "estate", "", "estate directory (default: DIR if given, else the current directory)")
	c.Flags().BoolVar(&all, "all", false, "run every image of the estate")
	c.Flags().BoolVar(&force, "force", false, "build even when an image is up to date")
	c.Flags().BoolVar(&detach, "detach", false, "only queue the runs; `kiln serve` runs them")
	c.Flags().StringVar(&trigger, "trigger", "", "why the run starts, recorded with it (default: manual by USER)")
	c.AddCommand(a.runShowCmd(), a.runLogsCmd(), a.runRetryCmd(), a.runCancelCmd())
	return c
}

// values returns the --var settings as a map.
func (v *varFlags) values() (map[string]string, error) {
	out := map[string]string{}
	for _, s := range v.vars {
		k, val, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "--var", "%q is not NAME=VALUE", s)
		}
		out[k] = val
	}
	if len(v.varFiles) > 0 {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "--var-file", "pipeline runs keep variables set with --var only; put variable files in the estate as *.auto.kiln.vars.hcl")
	}
	return out, nil
}

// sendWebhooks tries the due webhook deliveries once; `kiln serve`
// retries what fails.
func (a *App) sendWebhooks(ctx context.Context, svc *Services) {
	s := &pipeline.Sender{Store: svc.Pipeline, Logger: a.Logger()}
	if _, err := s.SendDue(ctx); err != nil {
		a.Logger().Warn("webhook deliveries", "err", err)
	}
}

func (a *App) printRuns(cmd *cobra.Command, svc *Services, ids []int64) error {
	var runs []*kiln.Run
	failed := 0
	for _, id := range ids {
		run, err := svc.Pipeline.FindRun(cmd.Context(), id)
		if err != nil {
			return err
		}
		runs = append(runs, run)
		if run.Status == kiln.RunFailed || run.Status == kiln.RunInterrupted || run.Status == kiln.RunCancelled {
			failed++
		}
	}
	if err := a.render(cmd.OutOrStdout(), runs, func(w io.Writer) error {
		runTable(w, runs)
		return nil
	}); err != nil {
		return err
	}
	if failed > 0 {
		return kiln.Errorf(kiln.ECONFLICT, "%d of %d run(s) did not succeed; see `kiln run show ID` and `kiln run logs ID`", failed, len(runs))
	}
	return nil
}

func runTable(w io.Writer, runs []*kiln.Run) {
	t := newTable(w, "RUN", "IMAGE", "STATUS", "VERSION", "STAGES", "TIME", "TRIGGER")
	for _, r := range runs {
		ver := ""
		if r.Version != nil {
			ver = r.Version.String()
		}
		t.row(strconv.FormatInt(r.ID, 10), r.Image, string(r.Status), ver, stageSummary(r), runTime(r), r.Trigger)
	}
	_ = t.flush()
}

// stageSummary renders "build:passed test:passed scan:warned prod:waiting".
func stageSummary(r *kiln.Run) string {
	parts := make([]string, len(r.Stages))
	for i, s := range r.Stages {
		parts[i] = s.Name + ":" + string(s.Status)
	}
	return strings.Join(parts, " ")
}

func runTime(r *kiln.Run) string {
	if r.StartedAt.IsZero() {
		return ""
	}
	return r.Elapsed(time.Now()).Round(100 * time.Millisecond).String()
}

func parseRunID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, kiln.FieldErrorf(kiln.EINVALID, "run", "%q is not a run id; give the number `kiln runs` shows", s)
	}
	return id, nil
}

func (a *App) runsCmd() *cobra.Command {
	var (
		image  string
		status []string
		limit  int
	)
	c := &cobra.Command{
		Use:   "runs",
		Short: "List pipeline runs, newest first",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, err := a.pipelineServices(cmd.Context())
			if err != nil {
				return err
			}
			if _, err := svc.Runner(nil).Recover(cmd.Context()); err != nil {
				return err
			}
			f := kiln.RunFilter{Image: image, Limit: limit}
			for _, s := range status {
				f.Status = append(f.Status, kiln.RunStatus(s))
			}
			runs, total, err := svc.Pipeline.ListRuns(cmd.Context(), f)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), map[string]any{"runs": runs, "total": total}, func(w io.Writer) error {
				runTable(w, runs)
				return nil
			})
		},
	}
	c.Flags().StringVar(&image, "image", "", "only runs of this image")
	c.Flags().StringSliceVar(&status, "status", nil, "only runs with these statuses (queued, running, waiting, succeeded, failed, interrupted, cancelled)")
	c.Flags().IntVar(&limit, "limit", 50, "how many runs to show")
	return c
}

func (a *App) runShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show RUN",
		Short: "Show a run: trigger, status, each stage with its timings and result",
		Args:  exactArgs(1, "a run id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			svc, err := a.pipelineServices(cmd.Context())
			if err != nil {
				return err
			}
			if _, err := svc.Runner(nil).Recover(cmd.Context()); err != nil {
				return err
			}
			run, err := svc.Pipeline.FindRun(cmd.Context(), id)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), run, func(w io.Writer) error {
				fmt.Fprintf(w, "Run:     %d\nImage:   %s\nEstate:  %s\nTrigger: %s\nStatus:  %s\n", run.ID, run.Image, run.Estate, run.Trigger, run.Status)
				if run.Version != nil {
					fmt.Fprintf(w, "Version: %s\n", run.Version)
				}
				if run.Reason != "" {
					fmt.Fprintf(w, "Reason:  %s\n", run.Reason)
				}
				if run.ResumePending {
					fmt.Fprintf(w, "Resume:  pending: a kiln serve pipeline worker queues it again from the interrupted stage\n")
				}
				if run.Resumes > 0 {
					fmt.Fprintf(w, "Resumes: %d (automatic, after interruptions)\n", run.Resumes)
				}
				fmt.Fprintf(w, "Queued:  %s\n", run.CreatedAt.Format(time.RFC3339))
				if !run.StartedAt.IsZero() {
					fmt.Fprintf(w, "Time:    %s\n", runTime(run))
				}
				fmt.Fprintln(w)
				t := newTable(w, "STAGE", "KIND", "GATE", "STATUS", "TIME", "DETAIL")
				for _, s := range run.Stages {
					d := ""
					if !s.StartedAt.IsZero() && !s.FinishedAt.IsZero() {
						d = s.FinishedAt.Sub(s.StartedAt).Round(100 * time.Millisecond).String()
					}
					detail := s.Detail
					if s.ApprovedBy != "" {
						detail = strings.TrimSpace("approved by " + s.ApprovedBy + "; " + detail)
					}
					t.row(s.Name, string(s.Kind), string(s.Gate), string(s.Status), d, detail)
				}
				return t.flush()
			})
		},
	}
}

func (a *App) runLogsCmd() *cobra.Command {
	var follow bool
	c := &cobra.Command{
		Use:   "logs RUN",
		Short: "Print a run's log; --follow keeps printing until the run ends",
		Args:  exactArgs(1, "a run id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			svc, err := a.pipelineServices(cmd.Context())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var seq int64
			for {
				logs, err := svc.Pipeline.RunLogs(ctx, id, seq, 1000)
				if err != nil {
					return err
				}
				for _, l := range logs {
					fmt.Fprint(cmd.OutOrStdout(), l.Text)
					seq = l.Seq
				}
				if len(logs) == 1000 {
					continue
				}
				if !follow {
					return nil
				}
				run, err := svc.Pipeline.FindRun(ctx, id)
				if err != nil {
					return err
				}
				if run.Status.Done() || run.Status == kiln.RunWaiting {
					// One last read: lines written just before the end.
					logs, err := svc.Pipeline.RunLogs(ctx, id, seq, 100000)
					for _, l := range logs {
						fmt.Fprint(cmd.OutOrStdout(), l.Text)
					}
					return err
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until the run ends")
	return c
}

func (a *App) runRetryCmd() *cobra.Command {
	var detach bool
	c := &cobra.Command{
		Use:   "retry RUN",
		Short: "Resume a failed or interrupted run from the stage that did not pass",
		Args:  exactArgs(1, "a run id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			return a.requeue(cmd, id, detach, func(ctx context.Context, st PipelineStore) (*kiln.Run, error) {
				return st.RetryRun(ctx, id, "retried by "+kiln.ActorFrom(ctx))
			})
		},
	}
	c.Flags().BoolVar(&detach, "detach", false, "only queue it again; `kiln serve` runs it")
	return c
}

// requeue changes a run so that it is queued again, then runs it here
// unless detached.
func (a *App) requeue(cmd *cobra.Command, id int64, detach bool, change func(context.Context, PipelineStore) (*kiln.Run, error)) error {
	svc, err := a.pipelineServices(cmd.Context())
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	progress := a.progress(cmd)
	r := svc.Runner(progress)
	if _, err := r.Recover(ctx); err != nil {
		return err
	}
	run, err := change(ctx, svc.Pipeline)
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "==> run %d of %s queued again\n", run.ID, run.Image)
	if !detach {
		if err := r.Wait(ctx, []int64{id}); err != nil {
			return err
		}
		a.sendWebhooks(ctx, svc)
	}
	return a.printRuns(cmd, svc, []int64{id})
}

func (a *App) runCancelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel RUN",
		Short: "Cancel a queued run, or one waiting for an approval",
		Args:  exactArgs(1, "a run id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			svc, err := a.pipelineServices(cmd.Context())
			if err != nil {
				return err
			}
			run, err := svc.Pipeline.CancelRun(cmd.Context(), id, "cancelled by "+kiln.ActorFrom(cmd.Context()))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "run %d of %s cancelled\n", run.ID, run.Image)
			return nil
		},
	}
}

func (a *App) approveCmd() *cobra.Command {
	var detach bool
	c := &cobra.Command{
		Use:   "approve RUN STAGE",
		Short: "Approve a delivery stage that waits for an approval (gate = \"approval\"), and go on with the run",
		Args:  exactArgs(2, "a run id and a stage name, e.g. 12 prod"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			return a.requeue(cmd, id, detach, func(ctx context.Context, st PipelineStore) (*kiln.Run, error) {
				return st.ApproveStage(ctx, id, args[1])
			})
		},
	}
	c.Flags().BoolVar(&detach, "detach", false, "only approve; `kiln serve` goes on with the run")
	return c
}
