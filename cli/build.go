package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/pipeline"
)

// varFlags are the estate variable flags shared by validate and build.
type varFlags struct {
	vars     []string
	varFiles []string
}

func (v *varFlags) add(c *cobra.Command) {
	c.Flags().StringArrayVar(&v.vars, "var", nil, "set an estate variable NAME=VALUE (repeatable)")
	c.Flags().StringArrayVar(&v.varFiles, "var-file", nil, "read estate variables from an HCL file (repeatable)")
}

func (v *varFlags) load(dir string) (*definition.Estate, error) {
	opts := definition.Options{Vars: map[string]string{}, VarFiles: v.varFiles, Env: os.Environ()}
	for _, s := range v.vars {
		k, val, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "--var", "%q is not NAME=VALUE", s)
		}
		opts.Vars[k] = val
	}
	est, diags := definition.Load(dir, opts)
	if diags.HasErrors() {
		return nil, &kiln.Error{Code: kiln.EINVALID, Message: fmt.Sprintf("estate %s has errors:\n%s", dir, strings.TrimRight(definition.FormatDiagnostics(diags), "\n"))}
	}
	return est, nil
}

func (a *App) validateCmd() *cobra.Command {
	var vf varFlags
	c := &cobra.Command{
		Use:   "validate DIR",
		Short: "Check an estate's *.kiln.hcl definitions and report every problem with file:line:col",
		Args:  exactArgs(1, "the estate directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			est, err := vf.load(args[0])
			if err != nil {
				return err
			}
			// The server tests are part of the estate: check them too.
			var bad []string
			for _, n := range est.Order {
				if _, err := pipeline.ImageSuite(est.Images[n]); err != nil {
					bad = append(bad, kiln.ErrorMessage(err))
				}
			}
			if len(bad) > 0 {
				return kiln.Errorf(kiln.EINVALID, "server tests of estate %s have errors:\n%s", args[0], strings.Join(bad, "\n"))
			}
			type img struct {
				Name   string `json:"name"`
				File   string `json:"file"`
				Digest string `json:"digest"`
			}
			out := []img{}
			for _, n := range est.Order {
				i := est.Images[n]
				out = append(out, img{n, i.File, i.Digest})
			}
			return a.render(cmd.OutOrStdout(), out, func(w io.Writer) error {
				fmt.Fprintf(w, "%s: %d image(s) valid, build order: %s\n", args[0], len(est.Order), strings.Join(est.Order, " → "))
				return nil
			})
		},
	}
	vf.add(c)
	return c
}

func (a *App) buildCmd() *cobra.Command {
	var (
		vf   varFlags
		opts build.Options
		sde  string
	)
	c := &cobra.Command{
		Use:   "build DIR [IMAGE…]",
		Short: "Build images of an estate (all, in dependency order, or the named ones) as candidate versions",
		Long: "Build bakes each image fresh from Debian packages or reheats its previous version, runs the\n" +
			"provisioning steps (reusing cached layers), and registers the result as a candidate version.\n" +
			"An image whose inputs have not changed since its latest version is reported up to date.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return &usageError{fmt.Errorf("%s needs the estate directory", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			est, err := vf.load(args[0])
			if err != nil {
				return err
			}
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			opts.Verbose = a.cfg.Verbose
			opts.Progress = a.progress(cmd)
			if sde != "" {
				if opts.SourceDateEpoch, err = build.ParseSourceDateEpoch("--source-date-epoch", sde); err != nil {
					return err
				}
			}
			results, err := svc.Builder.BuildAll(cmd.Context(), est, args[1:], opts)
			for _, r := range results {
				if r.Version == nil {
					continue
				}
				if serr := pipeline.RecordSuite(cmd.Context(), svc.Registry, r.Version.Ref(), est.Images[r.Image]); serr != nil && err == nil {
					err = serr
				}
			}
			if rerr := a.render(cmd.OutOrStdout(), buildSummary(results), func(w io.Writer) error {
				printBuildSummary(w, results)
				return nil
			}); rerr != nil && err == nil {
				err = rerr
			}
			return err
		},
	}
	vf.add(c)
	c.Flags().BoolVar(&opts.Force, "force", false, "build a new version even when nothing changed")
	c.Flags().BoolVar(&opts.NoCache, "no-cache", false, "run every step, ignoring the step cache")
	c.Flags().StringVar(&sde, "source-date-epoch", os.Getenv("SOURCE_DATE_EPOCH"), "SOURCE_DATE_EPOCH for the build (Unix seconds; default: $SOURCE_DATE_EPOCH, else the last git commit of the image's inputs, else a day derived from the definition's digest)")
	return c
}

type buildRow struct {
	Image    string  `json:"image"`
	Version  string  `json:"version,omitempty"`
	UpToDate bool    `json:"up_to_date"`
	Latest   string  `json:"latest,omitempty"`
	Steps    int     `json:"steps"`
	Cached   int     `json:"cached_steps"`
	Seconds  float64 `json:"seconds"`
}

func buildSummary(results []*build.Result) []buildRow {
	rows := []buildRow{}
	for _, r := range results {
		row := buildRow{Image: r.Image, UpToDate: r.UpToDate, Steps: len(r.Steps), Seconds: r.Elapsed.Seconds()}
		if r.Version != nil {
			row.Version = r.Version.Name
		}
		if r.Latest != nil {
			row.Latest = r.Latest.Name
		}
		for _, s := range r.Steps {
			if s.Cached {
				row.Cached++
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func printBuildSummary(w io.Writer, results []*build.Result) {
	if len(results) == 0 {
		return
	}
	t := newTable(w, "IMAGE", "RESULT", "STEPS", "CACHED", "TIME")
	for _, r := range buildSummary(results) {
		res := r.Version
		if r.UpToDate {
			res = "up to date (" + r.Latest + ")"
		}
		t.row(r.Image, res, fmt.Sprint(r.Steps), fmt.Sprint(r.Cached), (time.Duration(r.Seconds * float64(time.Second))).Round(100*time.Millisecond).String())
	}
	_ = t.flush()
}

func (a *App) versionDiffCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "diff IMAGE-A IMAGE-B",
		Short: "Show packages and files added, removed and changed between two versions",
		Args:  exactArgs(2, "two version names, e.g. appserver-2 appserver-3"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ra, err := kiln.ParseVersionRef("first version", args[0])
			if err != nil {
				return err
			}
			rb, err := kiln.ParseVersionRef("second version", args[1])
			if err != nil {
				return err
			}
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			d, err := build.Diff(cmd.Context(), svc.Registry, svc.Artifacts, ra, rb)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), d, func(w io.Writer) error {
				return printDiff(w, ra, rb, d)
			})
		},
	}
}

func printDiff(w io.Writer, a, b kiln.VersionRef, d *build.DiffResult) error {
	fmt.Fprintf(w, "%s → %s\n", a, b)
	fmt.Fprintf(w, "Packages: %d change(s)\n", len(d.Packages))
	for _, p := range d.Packages {
		switch p.Change {
		case build.Added:
			fmt.Fprintf(w, "  + %s %s\n", p.Name, p.To)
		case build.Removed:
			fmt.Fprintf(w, "  - %s %s\n", p.Name, p.From)
		default:
			fmt.Fprintf(w, "  ~ %s %s → %s\n", p.Name, p.From, p.To)
		}
	}
	fmt.Fprintf(w, "Files: %d change(s)\n", len(d.Files))
	for _, f := range d.Files {
		mark := map[build.Change]string{build.Added: "+", build.Removed: "-"}[f.Change]
		if mark == "" {
			mark = "~"
		}
		fmt.Fprintf(w, "  %s %s\n", mark, f.Path)
	}
	return nil
}

func (a *App) versionLogCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "log IMAGE-N",
		Short: "Print the build log kept with a version",
		Args:  exactArgs(1, "a version name such as appserver-3"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := kiln.ParseVersionRef("version", args[0])
			if err != nil {
				return err
			}
			reg, err := a.registry(cmd)
			if err != nil {
				return err
			}
			att, err := reg.Attachment(cmd.Context(), ref, build.LogAttachment)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(att.Data)
			return err
		},
	}
}
