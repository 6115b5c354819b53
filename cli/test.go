package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/pipeline"
	"github.com/kiln-project/kiln/verify"
)

func (a *App) testCmd() *cobra.Command {
	var (
		estate    string
		tests     []string
		reportDir string
		opts      pipeline.TestOptions
		vf        varFlags
		gossVars  []string
		inline    string
		format    string
	)
	c := &cobra.Command{
		Use:   "test IMAGE-N",
		Short: "Test stage: boot a temporary instance from the final image, run its server tests, destroy it, tag the version tested or failed",
		Long: "The tests are the goss-format files named by the image definition's `tests` (recorded with the\n" +
			"version at build time, or read from --estate), or the files given with --tests. Go templates in\n" +
			"them are rendered on this host with goss's vars: the image's test_vars, --vars files and --vars-inline.",
		Args: exactArgs(1, "a version name such as appserver-3"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := kiln.ParseVersionRef("version", args[0])
			if err != nil {
				return err
			}
			if err := kiln.ValidatePlatform("--platform", opts.Platform); err != nil {
				return err
			}
			out, err := verify.OutputFor(format)
			if err != nil {
				return kiln.FieldErrorf(kiln.EINVALID, "--format", "%v", err)
			}
			paths := tests
			var varsPaths []string
			if len(paths) == 0 && estate != "" {
				est, err := vf.load(estate)
				if err != nil {
					return err
				}
				img, err := est.Image(ref.Image)
				if err != nil {
					return err
				}
				paths = append(paths, img.TestPaths...)
				varsPaths = img.TestVarsPaths
				if len(paths) == 0 {
					return kiln.Errorf(kiln.EINVALID, "image %s in %s declares no tests; add tests = [\"tests/%s.yaml\"]", ref.Image, filepath.Join(estate, img.File), ref.Image)
				}
			}
			if len(paths) == 0 && (len(gossVars) > 0 || inline != "") {
				return kiln.Errorf(kiln.EINVALID, "--vars and --vars-inline render test files: give them with --tests or --estate (the suite recorded with the version is already rendered)")
			}
			if len(paths) > 0 {
				vars, err := verify.LoadVars(append(varsPaths, gossVars...), inline, "--vars-inline")
				if err != nil {
					return err
				}
				s, err := pipeline.LoadSuite(paths, vars)
				if err != nil {
					return err
				}
				opts.Suite = s
			}
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			progress := cmd.ErrOrStderr()
			res, err := svc.Tester(progress).Test(cmd.Context(), ref, opts)
			if err != nil {
				return err
			}
			if reportDir != "" && res.Report != nil {
				if err := res.Report.WriteDir(reportDir); err != nil {
					return err
				}
			}
			if format != "" && res.Report != nil {
				if err := out.Write(cmd.OutOrStdout(), res.Report); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s — %s (%s)\n", res.Version, res.Status, res.Reason, res.Elapsed.Round(1e8))
			} else if err := a.render(cmd.OutOrStdout(), res, func(w io.Writer) error {
				printTestResult(w, res)
				return nil
			}); err != nil {
				return err
			}
			if !res.Passed {
				return kiln.Errorf(kiln.ECONFLICT, "%s failed its tests: %s", ref, res.Reason)
			}
			return nil
		},
	}
	c.Flags().StringVar(&estate, "estate", "", "estate directory to read the image's tests from (default: the tests recorded with the version)")
	c.Flags().StringArrayVar(&tests, "tests", nil, "goss-format test file to run instead (repeatable)")
	c.Flags().StringArrayVar(&gossVars, "vars", nil, "goss vars file (YAML or JSON) for the test files' templates, after the image's test_vars (repeatable)")
	c.Flags().StringVar(&inline, "vars-inline", "", "goss vars as inline YAML or JSON, e.g. '{env: prod}'; replaces the files' top-level keys")
	c.Flags().StringVar(&format, "format", "", "print the report as "+strings.Join(verify.OutputNames, ", ")+" (goss's names; default: text and the result)")
	c.Flags().StringVar(&reportDir, "report-dir", "", "also write report.json and junit.xml here")
	c.Flags().BoolVar(&opts.Keep, "keep", false, "keep the instance running after the tests, for debugging")
	c.Flags().BoolVar(&opts.Retest, "retest", false, "run the tests on a version that is not a candidate, without changing its status")
	c.Flags().DurationVar(&opts.BootTimeout, "boot-timeout", 0, "how long the instance may take to boot (default 60s)")
	c.Flags().StringVar(&opts.Platform, "platform", "", "boot the instance on this platform: "+strings.Join(kiln.LaunchPlatforms, " or ")+" (default local; vm boots the version's disk image)")
	vf.add(c)
	return c
}

func printTestResult(w io.Writer, res *pipeline.TestResult) {
	if res.Report != nil {
		_ = (verify.Text{}).Write(w, res.Report)
	}
	fmt.Fprintf(w, "%s: %s — %s (%s)\n", res.Version, res.Status, res.Reason, res.Elapsed.Round(1e8))
}
