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
			if err := recordCheck(context.WithoutCancel(cmd.Context()), svc, rep, a.progress(cmd)); err != nil {
				return err
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

// recordCheck records a rebuild check with its version and, with a
// signing key at hand, keeps it signed (sign.SealReproduction) in the same
// transaction: an in-toto statement about the version's artifact beside
// its provenance, which never changes. It says on progress what was kept.
func recordCheck(ctx context.Context, svc *Services, rep *build.RebuildReport, progress io.Writer) error {
	if svc.Reproductions == nil {
		return nil
	}
	r := rep.Reproduction()
	if svc.Signer != nil {
		v, err := svc.Registry.FindVersion(ctx, rep.Version)
		if err != nil {
			return fmt.Errorf("record the check of %s: %w", rep.Version, err)
		}
		r.Seal = func(r *kiln.Reproduction) (*kiln.Attachment, error) { return svc.Signer.SealReproduction(v, r) }
	}
	if err := svc.Reproductions.RecordReproduction(ctx, r); err != nil {
		return fmt.Errorf("record the check of %s: %w", rep.Version, err)
	}
	if r.Attestation != "" {
		fmt.Fprintf(progress, "check recorded with %s and signed: attachment %s (`kiln version attachments %s`)\n", rep.Version, r.Attestation, rep.Version)
	} else {
		fmt.Fprintf(progress, "check recorded with %s, unsigned: no signing key here\n", rep.Version)
	}
	return nil
}
