package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
)

func (a *App) auditLog(cmd *cobra.Command) (kiln.AuditLog, error) {
	s, err := a.Services(cmd.Context())
	if err != nil {
		return nil, err
	}
	if s.Audit == nil {
		return nil, kiln.Errorf(kiln.EINVALID, "the audit log is read on the database directly: run `kiln audit` where kiln can open it (--database)")
	}
	return s.Audit, nil
}

func (a *App) auditCmd() *cobra.Command {
	var since, actor, target string
	var limit int
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List the audit log: who changed what, when, from where",
		Long: "Every change — API call, CLI command, status change, token change — and every refused API request is " +
			"appended to a hash-chained audit log in the same transaction as the change. `kiln audit verify` checks the chain.",
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON); err != nil {
				return err
			}
			f := kiln.AuditFilter{Actor: actor, Target: target, Limit: limit}
			if since != "" {
				t, err := parseSince(since)
				if err != nil {
					return err
				}
				f.Since = t
			}
			log, err := a.auditLog(cmd)
			if err != nil {
				return err
			}
			es, err := log.ListAudit(cmd.Context(), f)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), es, func(w io.Writer) error {
				t := newTable(w, "SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "SOURCE", "RESULT", "DETAIL")
				for _, e := range es {
					t.row(fmt.Sprint(e.Seq), e.Time.Local().Format(time.DateTime), e.Actor, e.Action, e.Target, e.Source, e.Result, e.Detail)
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only entries from this time on: RFC 3339, a date (2026-01-31) or an age (24h, 7d)")
	cmd.Flags().StringVar(&actor, "actor", "", "only entries by this actor (token:NAME, local:USER, anonymous)")
	cmd.Flags().StringVar(&target, "target", "", "only entries about this target (appserver-3, \"token ci\")")
	cmd.Flags().IntVar(&limit, "limit", 0, "only the newest N matching entries (0: all)")

	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log's hash chain: edited or deleted entries are reported",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := a.auditLog(cmd)
			if err != nil {
				return err
			}
			c, err := log.VerifyAudit(cmd.Context())
			if err != nil {
				return err
			}
			if err := a.render(cmd.OutOrStdout(), c, func(w io.Writer) error {
				for _, p := range c.Problems {
					fmt.Fprintln(w, p)
				}
				return nil
			}); err != nil {
				return err
			}
			if len(c.Problems) > 0 {
				return kiln.Errorf(kiln.ECONFLICT, "the audit log has been tampered with: %d problem(s) in %d entries; restore the database from a backup and investigate who had write access to it", len(c.Problems), c.Entries)
			}
			if a.cfg.Output != FormatJSON {
				fmt.Fprintf(cmd.OutOrStdout(), "audit log intact: %d entries, head %s\n", c.Entries, c.Head)
				fmt.Fprintln(cmd.ErrOrStderr(), "Keep the head hash elsewhere: a later verify that no longer reaches it shows that the newest entries were removed.")
			}
			return nil
		},
	}
	cmd.AddCommand(verify)
	return cmd
}

// parseSince reads a point in time: RFC 3339, a date, or an age before now.
func parseSince(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	if d, err := parseAge("--since", s); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, kiln.FieldErrorf(kiln.EINVALID, "--since", "%q is not a time; write 2026-01-31T12:00:00Z, 2026-01-31 or an age like 24h or 7d", s)
}
