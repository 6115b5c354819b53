package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/cli"
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
	cmd.AddCommand(b)
	return cmd
}
