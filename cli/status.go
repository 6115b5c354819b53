package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-project/kiln/pipeline"
)

func (a *App) statusCmd() *cobra.Command {
	var (
		vf       varFlags
		packages bool
	)
	c := &cobra.Command{
		Use:   "status [DIR]",
		Short: "Show for every image of an estate whether it is up to date, and if not, which input changed",
		Long: "Compares each image's latest version with the estate now: the definition and the files and\n" +
			"scripts it uses, the mirror's Release file (a new point release or security updates), the newest\n" +
			"ready version of its base image, and with --packages the mirror's package index (\"updates\n" +
			"available: openssl 3.0.11 → 3.0.13\"). Also shows each image's latest run and next scheduled run.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			est, err := vf.load(dir)
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
			sts, err := svc.Checker(packages).Check(cmd.Context(), est)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), sts, func(w io.Writer) error {
				printStatus(w, sts)
				return nil
			})
		},
	}
	vf.add(c)
	c.Flags().BoolVar(&packages, "packages", false, "also compare installed packages with the mirror's package index (downloads it when the mirror moved)")
	return c
}

func printStatus(w io.Writer, sts []*pipeline.ImageStatus) {
	t := newTable(w, "IMAGE", "LATEST", "READY", "STATE", "LAST RUN", "NEXT RUN")
	for _, s := range sts {
		latest, ready := "", ""
		if s.Latest != nil {
			latest = s.Latest.String() + " (" + string(s.LatestState) + ")"
		}
		if s.LatestReady != nil {
			ready = s.LatestReady.String()
		}
		state := "up to date"
		if !s.UpToDate {
			state = "out of date"
		}
		run := ""
		if s.Run != nil {
			run = fmt.Sprintf("%d %s", s.Run.ID, s.Run.Status)
		}
		next := ""
		if !s.NextRun.IsZero() {
			next = s.NextRun.Format(time.RFC3339) + " (" + s.Schedule + ")"
		}
		t.row(s.Image, latest, ready, state, run, next)
	}
	_ = t.flush()
	for _, s := range sts {
		if s.UpToDate {
			continue
		}
		msgs := make([]string, len(s.Reasons))
		for i, r := range s.Reasons {
			msgs[i] = r.Trigger + ": " + r.Message
		}
		fmt.Fprintf(w, "\n%s is out of date:\n  %s\n", s.Image, strings.Join(msgs, "\n  "))
	}
}
