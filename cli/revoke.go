package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
)

// revocationCmds are `kiln version revoke`, `restore`, `revocations` and
// `cancel-revocation`: revocation through ancestry, at once or scheduled
// (docs/supply-chain.md).
func (a *App) revocationCmds() []*cobra.Command {
	return []*cobra.Command{a.versionRevokeCmd(), a.versionRestoreCmd(), a.versionRevocationsCmd(), a.versionCancelRevocationCmd()}
}

// revoker is the services' Revoker, or the refusal when they have none.
func (a *App) revoker(cmd *cobra.Command) (kiln.Revoker, error) {
	svc, err := a.Services(cmd.Context())
	if err != nil {
		return nil, err
	}
	if svc.Revoker == nil {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this kiln setup keeps no revocations; use a kiln database (--database) or a server (--server)")
	}
	return svc.Revoker, nil
}

func (a *App) versionRevokeCmd() *cobra.Command {
	var reason, at string
	c := &cobra.Command{
		Use:   "revoke IMAGE-N --reason TEXT [--at TIME]",
		Short: "Revoke a version and every version built on it, now or at a given time",
		Long: "Revoke a released version: it and every version built on it (its base or parent, transitively) are revoked in one step, " +
			"with the reason and who did it. With --at the revocation is scheduled instead; kiln serve applies it when the time comes.",
		Args: exactArgs(1, "a version name such as basic-linux-2"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := kiln.ParseVersionRef("version", args[0])
			if err != nil {
				return err
			}
			if reason == "" {
				return kiln.FieldErrorf(kiln.EINVALID, "--reason", "say why %s is revoked with --reason TEXT; it is shown to everyone refused the version", ref)
			}
			r, err := a.revoker(cmd)
			if err != nil {
				return err
			}
			if at != "" {
				when, err := parseAt(at)
				if err != nil {
					return err
				}
				s, err := r.ScheduleRevocation(cmd.Context(), ref, when, reason)
				if err != nil {
					return err
				}
				return a.render(cmd.OutOrStdout(), s, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "%s will be revoked at %s, with every version built on it (cancel with `kiln version cancel-revocation %s`)\n",
						s.Version, s.At.UTC().Format(time.RFC3339), s.Version)
					return err
				})
			}
			revs, err := r.Revoke(cmd.Context(), ref, reason)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), revs, func(w io.Writer) error { return writeRevocations(w, revs) })
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why the version must not be used (required)")
	c.Flags().StringVar(&at, "at", "", "revoke at this time instead of now (RFC 3339 such as 2026-03-01T12:00:00Z, a date, or a delay such as 24h or 7d)")
	return c
}

// revokeByStatus is `kiln version status IMAGE-N revoked`: the same
// revocation as `kiln version revoke`, which takes every version built on
// ref with it, and it says so, naming each with the ancestor. The JSON
// output stays the version, as for any other status.
func (a *App) revokeByStatus(cmd *cobra.Command, reg kiln.Registry, ref kiln.VersionRef, reason string) error {
	r, err := a.revoker(cmd)
	if err != nil {
		return err
	}
	revs, err := r.Revoke(cmd.Context(), ref, reason)
	if err != nil {
		return err
	}
	v, err := reg.FindVersion(cmd.Context(), ref)
	if err != nil {
		return err
	}
	return a.render(cmd.OutOrStdout(), v, func(w io.Writer) error {
		if _, err := fmt.Fprintf(w, "%s is now %s\n", v.Name, v.Status); err != nil {
			return err
		}
		if len(revs) > 1 {
			if _, err := fmt.Fprintf(w, "revoked with it, through ancestry (built on %s):\n", ref); err != nil {
				return err
			}
			for _, rv := range revs[1:] {
				if _, err := fmt.Fprintf(w, "  %s (was %s) through %s\n", rv.Version, rv.Previous, rv.Through); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// writeRevocations prints the versions one revocation revoked: the
// version itself, then those revoked through it.
func writeRevocations(w io.Writer, revs []*kiln.Revocation) error {
	for _, r := range revs {
		var err error
		if r.Through == nil {
			_, err = fmt.Fprintf(w, "revoked %s (was %s): %s\n", r.Version, r.Previous, r.Reason)
		} else {
			_, err = fmt.Fprintf(w, "revoked %s (was %s) through %s\n", r.Version, r.Previous, r.Through)
		}
		if err != nil {
			return err
		}
	}
	if len(revs) > 1 {
		_, err := fmt.Fprintf(w, "%d versions revoked\n", len(revs))
		return err
	}
	return nil
}

func (a *App) versionRestoreCmd() *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:   "restore IMAGE-N --reason TEXT",
		Short: "Undo a version's revocation and the revocations it caused",
		Long: "Restore a version revoked itself: it and the versions revoked through it return to their previous status, " +
			"except versions still revoked through another ancestor.",
		Args: exactArgs(1, "a version name such as basic-linux-2"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := kiln.ParseVersionRef("version", args[0])
			if err != nil {
				return err
			}
			if reason == "" {
				return kiln.FieldErrorf(kiln.EINVALID, "--reason", "say why %s may be used again with --reason TEXT", ref)
			}
			r, err := a.revoker(cmd)
			if err != nil {
				return err
			}
			refs, err := r.Restore(cmd.Context(), ref, reason)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), refs, func(w io.Writer) error {
				for _, v := range refs {
					if _, err := fmt.Fprintf(w, "restored %s\n", v); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why the version may be used again (required)")
	return c
}

func (a *App) versionRevocationsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revocations",
		Short: "List scheduled revocations, soonest first",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.revoker(cmd)
			if err != nil {
				return err
			}
			ss, err := r.ScheduledRevocations(cmd.Context())
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), ss, func(w io.Writer) error {
				if len(ss) == 0 {
					_, err := fmt.Fprintln(w, "no scheduled revocations")
					return err
				}
				t := newTable(w, "VERSION", "AT", "BY", "REASON")
				for _, s := range ss {
					t.row(s.Version.String(), s.At.UTC().Format(time.RFC3339), s.Actor, s.Reason)
				}
				return t.flush()
			})
		},
	}
}

func (a *App) versionCancelRevocationCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel-revocation IMAGE-N",
		Short: "Cancel a version's scheduled revocation",
		Args:  exactArgs(1, "a version name such as basic-linux-2"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := kiln.ParseVersionRef("version", args[0])
			if err != nil {
				return err
			}
			r, err := a.revoker(cmd)
			if err != nil {
				return err
			}
			if err := r.CancelScheduledRevocation(cmd.Context(), ref); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "cancelled the scheduled revocation of %s\n", ref)
			return err
		},
	}
}

// parseAt reads --at: RFC 3339, a date (midnight, local time), or a delay
// from now such as 24h or 7d.
func parseAt(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	if d, err := parseAge("--at", s); err == nil {
		return time.Now().Add(d), nil
	}
	return time.Time{}, kiln.FieldErrorf(kiln.EINVALID, "--at", "%q is not a time; write 2026-03-01T12:00:00Z, 2026-03-01 or a delay like 24h or 7d", s)
}
