package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
)

// tokens returns the token store, or says why there is none.
func (a *App) tokens(ctx context.Context) (kiln.TokenStore, error) {
	s, err := a.Services(ctx)
	if err != nil {
		return nil, err
	}
	if s.Tokens == nil {
		return nil, kiln.Errorf(kiln.EINVALID, "tokens are managed on the database directly: run `kiln token` where kiln can open it (--database), not through --server")
	}
	return s.Tokens, nil
}

func (a *App) tokenCmd() *cobra.Command {
	cmd := group("token", "Manage API tokens (Authorization: Bearer …)")
	cmd.Long = "API tokens let clients use kiln's HTTP API. Each has a role: viewer, agent, builder, operator or admin (docs/security.md). " +
		"Run on the server's database, these commands are the administrator's local access: they need no token themselves."

	var roleFlag, expires string
	create := &cobra.Command{
		Use:   "create NAME --role ROLE",
		Short: "Create a token and print its secret (shown once)",
		Args:  exactArgs(1, "the token name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if roleFlag == "" {
				return kiln.FieldErrorf(kiln.EINVALID, "--role", "give the token a role: --role viewer, agent, builder, operator or admin (docs/security.md)")
			}
			role, err := kiln.ParseRole("--role", roleFlag)
			if err != nil {
				return err
			}
			nt := &kiln.NewToken{Name: args[0], Role: role}
			if expires != "" {
				d, err := parseAge("--expires", expires)
				if err != nil {
					return err
				}
				nt.ExpiresAt = time.Now().Add(d)
			}
			ts, err := a.tokens(cmd.Context())
			if err != nil {
				return err
			}
			tok, secret, err := ts.CreateToken(cmd.Context(), nt)
			if err != nil {
				return err
			}
			created := struct {
				*kiln.Token
				Secret string `json:"secret"`
			}{tok, secret}
			return a.render(cmd.OutOrStdout(), created, func(w io.Writer) error {
				fmt.Fprintln(w, secret)
				fmt.Fprintf(cmd.ErrOrStderr(), "Created token %s with role %s%s. The secret above is shown only now: store it (e.g. in KILN_TOKEN) — kiln keeps only its hash.\n",
					tok.Name, tok.Role, expiryNote(tok))
				return nil
			})
		},
	}
	create.Flags().StringVar(&roleFlag, "role", "", "viewer, agent, builder, operator or admin (required)")
	create.Flags().StringVar(&expires, "expires", "", "lifetime, e.g. 30d, 12h (default: no expiry)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON); err != nil {
				return err
			}
			ts, err := a.tokens(cmd.Context())
			if err != nil {
				return err
			}
			toks, err := ts.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), toks, func(w io.Writer) error {
				t := newTable(w, "NAME", "ROLE", "STATE", "CREATED", "BY", "EXPIRES")
				now := time.Now()
				for _, tok := range toks {
					state := "active"
					switch {
					case !tok.RevokedAt.IsZero():
						state = "revoked " + tok.RevokedAt.Local().Format(time.DateTime)
					case !tok.Active(now):
						state = "expired"
					}
					t.row(tok.Name, string(tok.Role), state, tok.CreatedAt.Local().Format(time.DateTime), tok.CreatedBy, fmtTime(tok.ExpiresAt))
				}
				return t.flush()
			})
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token and end its dashboard sessions, at once",
		Args:  exactArgs(1, "the token name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := a.tokens(cmd.Context())
			if err != nil {
				return err
			}
			tok, err := ts.RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), tok, func(w io.Writer) error {
				fmt.Fprintf(w, "revoked %s\n", tok.Name)
				return nil
			})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func expiryNote(t *kiln.Token) string {
	if t.ExpiresAt.IsZero() {
		return ", no expiry"
	}
	return ", expires " + t.ExpiresAt.Local().Format(time.DateTime)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format(time.DateTime)
}

// parseAge reads a duration: Go's syntax (12h, 90m) or whole days and
// weeks (30d, 2w).
func parseAge(field, s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			if v, err := strconv.Atoi(n); err == nil && v > 0 {
				return time.Duration(v) * unit, nil
			}
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, kiln.FieldErrorf(kiln.EINVALID, field, "%q is not a positive duration; write e.g. 30d, 2w or 12h", s)
	}
	return d, nil
}
