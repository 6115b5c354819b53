package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/build"
)

func (a *App) versionRebuildCmd() *cobra.Command {
	var (
		vf       varFlags
		check    bool
		estate   string
		maxFiles int
	)
	c := &cobra.Command{
		Use:   "rebuild IMAGE-N --check",
		Short: "Bake a version again from its recorded provenance and say whether it comes out bit for bit the same",
		Long: "rebuild --check bakes IMAGE-N again from the estate (whose definition, files and scripts must have\n" +
			"the recorded digests), with the recorded SOURCE_DATE_EPOCH, version number, base or parent and\n" +
			"package versions (pinned from the recorded manifest; the mirror must still offer them), without\n" +
			"the step cache, and compares the artifact with the recorded one. It prints identical, or the\n" +
			"files that differ with the step that wrote each (and diffoscope's report on the first of them\n" +
			"when diffoscope is installed), and records the check with the version. Nothing is registered.\n" +
			"Exit status 1 when the rebuild differs.",
		Args: exactArgs(1, "the version to rebuild, e.g. basic-linux-3"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !check {
				return &usageError{fmt.Errorf("%s compares a rebuild with the recorded version and keeps nothing else: give --check", cmd.CommandPath())}
			}
			ref, err := kiln.ParseVersionRef("version", args[0])
			if err != nil {
				return err
			}
			est, err := vf.load(estate)
			if err != nil {
				return err
			}
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			if svc.Builder == nil {
				return kiln.Errorf(kiln.EINVALID, "rebuild --check bakes on this machine; run it without --server")
			}
			rep, err := svc.Builder.Rebuild(cmd.Context(), est, ref, build.RebuildOptions{Progress: a.progress(cmd), Verbose: a.cfg.Verbose, MaxFiles: maxFiles})
			if err != nil {
				return err
			}
			if svc.Reproductions != nil {
				rctx := context.WithoutCancel(cmd.Context())
				if rerr := svc.Reproductions.RecordReproduction(rctx, rep.Reproduction()); rerr != nil {
					return fmt.Errorf("record the check of %s: %w", ref, rerr)
				}
			}
			if err := a.render(cmd.OutOrStdout(), rep, func(w io.Writer) error {
				_, err := io.WriteString(w, rep.String())
				return err
			}); err != nil {
				return err
			}
			if !rep.Identical {
				return kiln.Errorf(kiln.ECONFLICT, "%s is not reproducible: %d files differ (listed above)", ref, len(rep.Files))
			}
			return nil
		},
	}
	vf.add(c)
	c.Flags().BoolVar(&check, "check", false, "compare the rebuild with the recorded artifact (required)")
	c.Flags().StringVar(&estate, "estate", ".", "the estate directory the version was built from")
	c.Flags().IntVar(&maxFiles, "max-files", 20, "how many differing files to list")
	return c
}
