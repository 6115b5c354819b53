package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/bench"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/benchdrivers"
	"github.com/kiln-project/kiln/store"
)

// benchCmd is `kiln bench build`: build figures measured in one run on a
// throwaway data directory and registry, so nothing of the user's is touched.
func benchCmd(a *cli.App) *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure kiln on this machine"}
	var opts build.BenchOptions
	var keep bool
	b := &cobra.Command{
		Use:   "build",
		Short: "Raw mmdebstrap vs kiln fresh bake, cached rebuild and reheat with one extra package",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := os.MkdirTemp("", "kiln-bench-")
			if err != nil {
				return err
			}
			if !keep {
				defer os.RemoveAll(dir)
			}
			logger := a.Logger()
			db, err := store.Open(cmd.Context(), "", dir, logger, time.Now)
			if err != nil {
				return err
			}
			defer db.Close()
			arts, err := artifact.Open(dir)
			if err != nil {
				return err
			}
			opts.DataDir, opts.Registry, opts.Artifacts, opts.Logger = dir, db, arts, logger
			opts.Progress = cmd.ErrOrStderr()
			res, err := build.Bench(cmd.Context(), opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.String())
			return nil
		},
	}
	b.Flags().StringVar(&opts.Suite, "suite", "bookworm", "Debian suite")
	b.Flags().StringVar(&opts.Mirror, "mirror", "", "Debian mirror (default deb.debian.org)")
	b.Flags().StringSliceVar(&opts.Packages, "packages", nil, "packages both bakes install")
	b.Flags().StringVar(&opts.Extra, "extra", "hello", "package the reheat adds")
	b.Flags().IntVar(&opts.Rounds, "rounds", 2, "alternating raw/fresh rounds; the fastest of each is kept")
	b.Flags().BoolVar(&keep, "keep", false, "keep the scratch data directory")
	cmd.AddCommand(b, benchAllCmd(a))
	return cmd
}

// benchAllCmd is `kiln bench all`: every figure in one report (package
// bench), each beside its reference run and its target, with the machine
// and its load; --write-doc regenerates the section of docs/benchmarks.md.
func benchAllCmd(a *cli.App) *cobra.Command {
	var (
		quick            bool
		only             []string
		writeDoc, estate string
		env              bench.Env
		fleetInstances   int
		timeout          time.Duration
	)
	c := &cobra.Command{
		Use:   "all",
		Short: "Every benchmark in one report: figure, reference, ratio, target, met (--quick: under 5 minutes)",
		Long: `Runs every benchmark kiln has, in throwaway data directories and databases
(nothing of yours is touched), and prints one table: each figure, its
reference run taken in the same process (the ratio is the figure wherever a
reference exists), its target and whether it is met, with the machine and
its load average before and after. Measures that need what this machine
lacks (root, mmdebstrap, PostgreSQL) are listed as skipped with the reason.

  kiln bench all --quick                      # under 5 minutes
  kiln bench all --postgres postgres://…      # PostgreSQL figures too
  kiln bench all -o json > bench.json
  kiln bench all --write-doc docs/benchmarks.md`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format := a.Config().Output
			if format != cli.FormatTable && format != cli.FormatJSON {
				return fmt.Errorf("--output: unknown format %q; use table or json", format)
			}
			measures, err := bench.Select([]bench.Measure{
				bench.Build(), bench.Disk(), bench.Pipeline(estate), bench.Checkins(), bench.FleetReports(fleetInstances), bench.SBOM(), bench.RegistryFigures(estate), bench.Rebuild(estate),
			}, only)
			if err != nil {
				return err
			}
			if timeout == 0 {
				timeout = time.Hour
				if quick {
					timeout = 10 * time.Minute
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			dir, err := os.MkdirTemp("", "kiln-bench-all-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			env.Dir, env.Quick, env.Progress, env.Logger = dir, quick, cmd.ErrOrStderr(), a.Logger()
			env.Drivers = benchdrivers.Real()
			rep, runErr := bench.Run(ctx, &env, measures)
			out := cmd.OutOrStdout()
			if format == cli.FormatJSON {
				err = rep.WriteJSON(out)
			} else {
				err = rep.WriteText(out)
			}
			if err != nil {
				return err
			}
			if writeDoc != "" && runErr == nil {
				if err := bench.UpdateDoc(writeDoc, rep.Markdown()); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "bench: wrote the figures into %s\n", writeDoc)
			}
			if runErr != nil {
				return fmt.Errorf("bench stopped: %w (the figures taken so far are above)", runErr)
			}
			if len(rep.Failures) > 0 {
				return fmt.Errorf("%d measure(s) failed; see the end of the report", len(rep.Failures))
			}
			return nil
		},
	}
	f := c.Flags()
	f.BoolVar(&quick, "quick", false, "smaller sizes and only the measures that fit in 5 minutes")
	f.StringSliceVar(&only, "only", nil, "run only these measures (build, pipeline, checkin, fleet, sbom, registry, disk, rebuild)")
	f.StringVar(&env.Postgres, "postgres", os.Getenv("KILN_BENCH_POSTGRES"), "PostgreSQL URL for the figures taken on both backends (env KILN_BENCH_POSTGRES); a schema is made and dropped")
	f.StringVar(&env.Mirror, "mirror", "", "Debian mirror for the build figures (default deb.debian.org)")
	f.StringVar(&estate, "estate", "examples/estate", "estate whose pipelines the pipeline figures run (and whose images the registry figures build)")
	f.IntVar(&fleetInstances, "fleet-instances", 1_000_000, "instances in the synthetic fleet (100,000 with --quick)")
	f.StringVar(&writeDoc, "write-doc", "", "replace the generated section of this Markdown file (docs/benchmarks.md) with the report")
	f.DurationVar(&timeout, "timeout", 0, "stop after this long (default 1h, 10m with --quick)")
	return c
}
