package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/advisory"
)

func contextWithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

func (a *App) advisoryCmd() *cobra.Command {
	cmd := group("advisory", "Record and import security advisories")
	cmd.AddCommand(a.advisoryAddCmd(), a.advisoryImportCmd(), a.advisoryListCmd(), a.advisoryShowCmd(), a.advisoryDeleteCmd(), a.advisorySourceCmd())
	return cmd
}

func (a *App) advisoryAddCmd() *cobra.Command {
	var (
		fixedIn      []string
		summary, url string
	)
	c := &cobra.Command{
		Use:   "add ID --fixed-in IMAGE-N[,IMAGE-N…]",
		Short: "Record that an advisory is fixed in these image versions (replaces an advisory with that id)",
		Args:  exactArgs(1, "the advisory id, e.g. CVE-2024-2511"),
		RunE: func(cmd *cobra.Command, args []string) error {
			refs, err := advisory.ParseFixedIn("--fixed-in", fixedIn...)
			if err != nil {
				return err
			}
			adv := &kiln.Advisory{ID: args[0], Source: kiln.AdvisoryManual, Summary: summary, URL: url, FixedIn: refs}
			if err := adv.Validate(); err != nil {
				return err
			}
			svc, err := a.fleetServices(cmd.Context())
			if err != nil {
				return err
			}
			n, err := svc.Advisories.PutAdvisories(cmd.Context(), []*kiln.Advisory{adv})
			if err != nil {
				return err
			}
			what := "updated"
			if n == 1 {
				what = "added"
			}
			cmd.Printf("%s %s: fixed in %s\n", what, adv.ID, refList(refs))
			return nil
		},
	}
	c.Flags().StringArrayVar(&fixedIn, "fixed-in", nil, "first fixed version of each affected image, IMAGE-N (repeatable or comma-separated)")
	c.Flags().StringVar(&summary, "summary", "", "one line saying what it is about")
	c.Flags().StringVar(&url, "url", "", "where to read more")
	return c
}

func refList(rs []kiln.VersionRef) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.String())
	}
	return strings.Join(s, ", ")
}

func (a *App) advisoryImportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "import osv|debian-tracker FILE|DIR",
		Short: "Import OSV records (a file or a directory of *.json) or the Debian security tracker's JSON export",
		Long: `Import advisories in one transaction: all or nothing. An advisory already
stored with the same id is replaced when its content changed and left alone
otherwise, so importing the same files again changes nothing.`,
		Args: exactArgs(2, "the format (osv or debian-tracker) and a file or directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			want := kiln.AdvisorySource(args[0])
			if want != kiln.AdvisoryOSV && want != kiln.AdvisoryDebianTracker {
				return &usageError{fmt.Errorf("unknown advisory format %q; use osv or debian-tracker", args[0])}
			}
			advs, err := advisory.ImportPath(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			for _, adv := range advs {
				if adv.Source != want {
					return kiln.FieldErrorf(kiln.EINVALID, args[1], "holds %s data (advisory %s), not %s; run `kiln advisory import %s %s`", adv.Source, adv.ID, want, adv.Source, args[1])
				}
			}
			svc, err := a.fleetServices(cmd.Context())
			if err != nil {
				return err
			}
			n, err := svc.Advisories.PutAdvisories(cmd.Context(), advs)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), map[string]int{"read": len(advs), "created": n}, func(_ io.Writer) error {
				cmd.Printf("imported %d advisories from %s (%d new)\n", len(advs), args[1], n)
				return nil
			})
		},
	}
}

func (a *App) advisoryListCmd() *cobra.Command {
	var (
		source, pkg string
		fixedIn     bool
		limit       int
	)
	c := &cobra.Command{
		Use:   "list",
		Short: "List stored advisories by id",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON, FormatCSV); err != nil {
				return err
			}
			svc, err := a.fleetServices(cmd.Context())
			if err != nil {
				return err
			}
			as, total, err := svc.Advisories.ListAdvisories(cmd.Context(), kiln.AdvisoryFilter{
				Source: kiln.AdvisorySource(source), Package: pkg, FixedIn: fixedIn, Limit: limit})
			if err != nil {
				return err
			}
			var rows [][]string
			for _, adv := range as {
				mod := ""
				if !adv.Modified.IsZero() {
					mod = adv.Modified.UTC().Format("2006-01-02")
				}
				rows = append(rows, []string{adv.ID, string(adv.Source), refList(adv.FixedIn), mod, adv.Summary})
			}
			var footer []string
			if total > len(as) {
				footer = append(footer, fmt.Sprintf("(%d of %d shown; use --limit)", len(as), total))
			}
			return a.writeRows(cmd, map[string]any{"advisories": as, "total": total},
				[]string{"ID", "SOURCE", "FIXED IN", "MODIFIED", "SUMMARY"}, rows, footer...)
		},
	}
	c.Flags().StringVar(&source, "source", "", "only from this source: osv, debian-tracker or manual")
	c.Flags().StringVar(&pkg, "package", "", "only advisories naming this Debian source package")
	c.Flags().BoolVar(&fixedIn, "fixed-in", false, "only image-level advisories (with fixed-in versions)")
	c.Flags().IntVar(&limit, "limit", 100, "show at most this many (0: all)")
	return c
}

func (a *App) advisoryShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a stored advisory whole, as JSON",
		Args:  exactArgs(1, "the advisory id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := a.fleetServices(cmd.Context())
			if err != nil {
				return err
			}
			adv, err := svc.Advisories.FindAdvisory(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), adv)
		},
	}
}

func (a *App) advisoryDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Remove a stored advisory",
		Args:  exactArgs(1, "the advisory id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := a.fleetServices(cmd.Context())
			if err != nil {
				return err
			}
			return svc.Advisories.DeleteAdvisory(cmd.Context(), args[0])
		},
	}
}
