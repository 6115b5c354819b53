package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/feed"
)

// advisorySources returns the advisory source store, or says why there is
// none (through --server: sources are managed where the database is).
func (a *App) advisorySources(cmd *cobra.Command) (kiln.AdvisorySourceStore, error) {
	svc, err := a.Services(cmd.Context())
	if err != nil {
		return nil, err
	}
	if svc.AdvisorySources == nil {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "advisory sources are managed on the database directly: run `kiln advisory source` where kiln can open it (--database), not through --server")
	}
	return svc.AdvisorySources, nil
}

func (a *App) advisorySourceCmd() *cobra.Command {
	cmd := group("source", "Advisory sources kiln serve keeps current (OSV records, archives, the Debian tracker)")
	cmd.AddCommand(a.advisorySourceAddCmd(), a.advisorySourceListCmd(), a.advisorySourceRemoveCmd(), a.advisorySourceSyncCmd())
	return cmd
}

func (a *App) advisorySourceAddCmd() *cobra.Command {
	var (
		kind, url string
		every     time.Duration
	)
	c := &cobra.Command{
		Use:   "add NAME --kind osv|debian-tracker --url URL [--every 1h]",
		Short: "Add an advisory source; kiln serve syncs it every interval",
		Long: `Add an advisory source. kind osv reads one OSV record, a directory listing
(an HTML or JSON index of *.json records) or an ecosystem archive such as
https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip; kind
debian-tracker reads https://security-tracker.debian.org/tracker/data/json.

kiln serve syncs every source when its interval has passed, with
conditional requests (an unchanged source costs a 304). A sync replaces the
advisories the source brought last time, all or nothing; a failed sync
keeps them and ` + "`kiln advisory source list`" + ` says why. Sync now with
` + "`kiln advisory source sync NAME`" + `.`,
		Args: exactArgs(1, "the source's name, e.g. debian-osv"),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.advisorySources(cmd)
			if err != nil {
				return err
			}
			f := &kiln.AdvisoryFeed{Name: args[0], Kind: kiln.AdvisorySource(kind), URL: url, Every: every}
			if err := f.Validate(); err != nil {
				return flagError(err)
			}
			if err := st.CreateAdvisoryFeed(cmd.Context(), f); err != nil {
				return err
			}
			cmd.Printf("added advisory source %s (%s, every %s); sync it now with `kiln advisory source sync %s`\n", f.Name, f.Kind, f.Every, f.Name)
			return nil
		},
	}
	c.Flags().StringVar(&kind, "kind", "", "osv or debian-tracker")
	c.Flags().StringVar(&url, "url", "", "where the source is served (http or https)")
	c.Flags().DurationVar(&every, "every", kiln.DefaultFeedEvery, "how often kiln serve syncs it")
	return c
}

// flagError names the flag of a feed's field.
func flagError(err error) error {
	var e *kiln.Error
	if errors.As(err, &e) && e.Field != "" && e.Field != "name" {
		e.Field = "--" + e.Field
	}
	return err
}

func (a *App) advisorySourceListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List advisory sources: when each last synced, how many advisories it holds, and its last error",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON, FormatCSV); err != nil {
				return err
			}
			st, err := a.advisorySources(cmd)
			if err != nil {
				return err
			}
			fs, err := st.ListAdvisoryFeeds(cmd.Context())
			if err != nil {
				return err
			}
			var rows [][]string
			for _, f := range fs {
				last := "never"
				if !f.LastSuccess.IsZero() {
					last = f.LastSuccess.UTC().Format(time.RFC3339)
				}
				errText := f.LastError
				if errText == "" {
					errText = "-"
				}
				rows = append(rows, []string{f.Name, string(f.Kind), f.Every.String(), strconv.Itoa(f.Advisories), last, errText, f.URL})
			}
			var footer []string
			if len(fs) == 0 {
				footer = append(footer, "no advisory sources; add one with `kiln advisory source add NAME --kind osv --url URL`")
			}
			return a.writeRows(cmd, map[string]any{"sources": fs},
				[]string{"NAME", "KIND", "EVERY", "ADVISORIES", "LAST SUCCESS", "LAST ERROR", "URL"}, rows, footer...)
		},
	}
}

func (a *App) advisorySourceRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove an advisory source and the advisories it brought",
		Args:  exactArgs(1, "the source's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.advisorySources(cmd)
			if err != nil {
				return err
			}
			n, err := st.DeleteAdvisoryFeed(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			cmd.Printf("removed advisory source %s and its %d advisories\n", args[0], n)
			return nil
		},
	}
}

func (a *App) advisorySourceSyncCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "sync [NAME]",
		Short: "Sync one advisory source, or all of them, now",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.advisorySources(cmd)
			if err != nil {
				return err
			}
			var fs []*kiln.AdvisoryFeed
			if len(args) == 1 {
				f, err := st.FindAdvisoryFeed(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				fs = append(fs, f)
			} else if fs, err = st.ListAdvisoryFeeds(cmd.Context()); err != nil {
				return err
			}
			sy := &feed.Syncer{Store: st, TempDir: a.cfg.DataDir}
			var results []*feed.Result
			var failed []error
			for _, f := range fs {
				res, err := sy.Sync(cmd.Context(), f)
				if err != nil {
					failed = append(failed, err)
					continue
				}
				results = append(results, res)
			}
			err = a.render(cmd.OutOrStdout(), map[string]any{"synced": results, "failed": len(failed)}, func(w io.Writer) error {
				for _, r := range results {
					if r.NotModified {
						fmt.Fprintf(w, "%s: not modified (%d advisories kept)\n", r.Source, r.Read)
						continue
					}
					fmt.Fprintf(w, "%s: %d advisories (%d new, %d replaced, %d removed, %d unchanged)\n", r.Source, r.Read, r.Created, r.Updated, r.Removed, r.Unchanged)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if len(failed) == 1 {
				return failed[0]
			}
			if len(failed) > 1 {
				return kiln.Errorf(kiln.EUNAVAILABLE, "%d advisory sources failed (their previous advisories are kept): %v", len(failed), failed)
			}
			return nil
		},
	}
}
