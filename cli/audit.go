package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/sign"
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

// auditCheckpoints returns the services and the audit log's checkpoints,
// which are read on the database directly.
func (a *App) auditCheckpoints(cmd *cobra.Command) (*Services, kiln.AuditCheckpoints, error) {
	s, err := a.Services(cmd.Context())
	if err != nil {
		return nil, nil, err
	}
	if s.Checkpoints == nil {
		return nil, nil, kiln.Errorf(kiln.EINVALID, "the audit log is read on the database directly: run `kiln audit` where kiln can open it (--database)")
	}
	return s, s.Checkpoints, nil
}

// parseAnchors reads --expect SEQ:HASH values.
func parseAnchors(vals []string) ([]kiln.AuditAnchor, error) {
	var out []kiln.AuditAnchor
	for _, v := range vals {
		seq, hash, ok := strings.Cut(v, ":")
		n, err := strconv.ParseInt(seq, 10, 64)
		if !ok || err != nil || n <= 0 || len(hash) != 64 || strings.Trim(hash, "0123456789abcdef") != "" {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "--expect", "%q is not SEQ:HASH; give a line `kiln audit head` printed, such as 42:%s", v, strings.Repeat("0", 64))
		}
		out = append(out, kiln.AuditAnchor{Seq: n, Hash: hash})
	}
	return out, nil
}

// fileCheckpoints is the database's checkpoints together with those from
// a file kept outside it.
type fileCheckpoints struct {
	kiln.AuditCheckpoints
	list []*kiln.AuditCheckpoint
}

func (f fileCheckpoints) ListAuditCheckpoints(context.Context) ([]*kiln.AuditCheckpoint, error) {
	return f.list, nil
}

// withFileCheckpoints adds the file's checkpoints to the database's (by
// entry, the database's first) and returns the entries whose checkpoint
// is only in the file.
func withFileCheckpoints(ctx context.Context, cps kiln.AuditCheckpoints, fromFile []*kiln.AuditCheckpoint) (kiln.AuditCheckpoints, []int64, error) {
	list, err := cps.ListAuditCheckpoints(ctx)
	if err != nil {
		return nil, nil, err
	}
	have := map[int64]*kiln.AuditCheckpoint{}
	for _, cp := range list {
		have[cp.Seq] = cp
	}
	var missing []int64
	for _, cp := range fromFile {
		db, ok := have[cp.Seq]
		switch {
		case ok && db.Hash == cp.Hash && bytes.Equal(db.Envelope, cp.Envelope):
			continue // the same checkpoint
		case !ok:
			missing = append(missing, cp.Seq)
			have[cp.Seq] = cp
		}
		// A checkpoint the database lacks, or one that differs from the
		// database's row: it is checked too, so a changed row cannot hide.
		list = append(list, cp)
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].Seq < list[j].Seq })
	return fileCheckpoints{AuditCheckpoints: cps, list: list}, missing, nil
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

	var expect []string
	var cpFile string
	var staleAfter time.Duration
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log against its hash chain, its signed checkpoints and the heads you kept",
		Long: "Check the audit log's hash chain (edited or deleted entries), the checkpoints kiln serve signs with the signing key " +
			"(a chain rewritten by someone who can write to the database no longer matches them), the checkpoint file kept outside the " +
			"database (--checkpoints) and the heads you wrote down from `kiln audit head` (--expect SEQ:HASH). Exits non-zero on any problem.",
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			anchors, err := parseAnchors(expect)
			if err != nil {
				return err
			}
			s, cps, err := a.auditCheckpoints(cmd)
			if err != nil {
				return err
			}
			var warnings []string
			if cpFile != "" {
				fromFile, err := sign.ReadCheckpointFile(cpFile)
				if err != nil {
					return err
				}
				merged, missing, err := withFileCheckpoints(cmd.Context(), cps, fromFile)
				if err != nil {
					return err
				}
				cps = merged
				for _, seq := range missing {
					warnings = append(warnings, fmt.Sprintf("the checkpoint of entry %d is in %s but not in the database: checkpoints were deleted from it", seq, cpFile))
				}
			}
			var keys []ed25519.PublicKey
			if s.Signer != nil {
				keys = s.Signer.Keys()
			}
			r, err := sign.VerifyAuditLog(cmd.Context(), cps, anchors, staleAfter, time.Now(), keys...)
			if err != nil {
				return err
			}
			r.Warnings = append(warnings, r.Warnings...)
			if err := a.render(cmd.OutOrStdout(), r, func(w io.Writer) error {
				for _, p := range r.Problems {
					fmt.Fprintln(w, "problem: "+p)
				}
				for _, p := range r.Warnings {
					fmt.Fprintln(w, "warning: "+p)
				}
				return nil
			}); err != nil {
				return err
			}
			if len(r.Problems) > 0 {
				return kiln.Errorf(kiln.ECONFLICT, "the audit log has been tampered with: %d problem(s) in %d entries; restore the database from a backup and investigate who had write access to it", len(r.Problems), r.Entries)
			}
			if a.cfg.Output != FormatJSON {
				fmt.Fprintf(cmd.OutOrStdout(), "audit log intact: %d entries, head %d:%s; %d signed checkpoint(s) and %d kept head(s) match\n", r.Entries, r.Entries, r.Head, r.Checkpoints, r.Anchors)
				if r.Checkpoints == 0 && r.Anchors == 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), "Nothing outside the database vouched for the log: run kiln serve (it signs checkpoints), or keep the output of `kiln audit head` and pass it with --expect.")
				}
			}
			return nil
		},
	}
	verify.Flags().StringArrayVar(&expect, "expect", nil, "a head you kept from `kiln audit head`, SEQ:HASH; the log must still hold entry SEQ with that hash (repeatable)")
	verify.Flags().StringVar(&cpFile, "checkpoints", "", "also check against the signed checkpoints in this file (JSON lines, from kiln serve --audit-checkpoint-file)")
	verify.Flags().DurationVar(&staleAfter, "stale-after", time.Hour, "warn when the newest signed checkpoint is older than this while newer entries exist (0: never)")

	head := &cobra.Command{
		Use:   "head",
		Short: "Print the audit log's newest entry as SEQ:HASH, to keep outside kiln for `kiln audit verify --expect`",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, cps, err := a.auditCheckpoints(cmd)
			if err != nil {
				return err
			}
			h, err := cps.AuditHead(cmd.Context())
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), h, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%d:%s\n", h.Seq, h.Hash)
				return err
			})
		},
	}
	var appendTo string
	checkpoint := &cobra.Command{
		Use:   "checkpoint",
		Short: "Sign a checkpoint of the audit log's head now (kiln serve does so every --audit-checkpoint-every)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, cps, err := a.auditCheckpoints(cmd)
			if err != nil {
				return err
			}
			if s.Signer == nil {
				return kiln.Errorf(kiln.EINVALID, "signing a checkpoint needs the signing key; run `kiln audit checkpoint` where kiln signs")
			}
			c := &sign.Checkpointer{Store: cps, Signer: s.Signer, File: appendTo}
			cp, err := c.Checkpoint(cmd.Context())
			if err != nil {
				return err
			}
			if cp == nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "the newest entry is already checkpointed (or the log is empty): nothing to sign")
				return nil
			}
			return a.render(cmd.OutOrStdout(), cp, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "signed checkpoint %d:%s (key %s)\n", cp.Seq, cp.Hash, cp.KeyID)
				return err
			})
		},
	}
	checkpoint.Flags().StringVar(&appendTo, "file", "", "also append the checkpoint to this file (JSON lines), like kiln serve --audit-checkpoint-file")
	cmd.AddCommand(verify, head, checkpoint)
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
