package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
)

// applyServices records est's service blocks as estate's.
func (a *App) applyServices(ctx context.Context, estate string, est *definition.Estate) ([]string, error) {
	if len(est.Services) == 0 {
		return nil, nil
	}
	s, err := a.Services(ctx)
	if err != nil {
		return nil, err
	}
	if s.ServiceStore == nil {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this kiln setup keeps no services; use a kiln database (--database)")
	}
	return ApplyEstateServices(ctx, s.ServiceStore, estate, est)
}

// estates returns the estate store, or says why there is none.
func (a *App) estates(ctx context.Context) (kiln.EstateStore, error) {
	s, err := a.Services(ctx)
	if err != nil {
		return nil, err
	}
	if s.Estates == nil {
		return nil, kiln.Errorf(kiln.EINVALID, "estates are registered on the server's database directly: run `kiln estate` where kiln can open it (--database), not through --server")
	}
	return s.Estates, nil
}

func (a *App) estateCmd() *cobra.Command {
	cmd := group("estate", "Register the estates the server may run pipelines of (POST /api/v1/runs)")
	cmd.Long = "Runs asked for through the API start only from an estate registered here: its definition decides what is built, " +
		"as root, and where it is delivered, so choosing it is the administrator's decision (docs/security.md). " +
		"Run on the server's database, these commands need no token."

	add := &cobra.Command{
		Use:   "add NAME DIR",
		Short: "Register the estate directory DIR under NAME",
		Args:  exactArgs(2, "the estate's name and its directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := filepath.Abs(args[1])
			if err != nil {
				return kiln.FieldErrorf(kiln.EINVALID, "DIR", "cannot make %s absolute: %v", args[1], err)
			}
			est, err := LoadEstate(dir, nil)
			if err != nil {
				return fmt.Errorf("estate %s does not load, so it is not registered: %w", dir, err)
			}
			es, err := a.estates(cmd.Context())
			if err != nil {
				return err
			}
			e := &kiln.Estate{Name: args[0], Dir: dir}
			if err := es.AddEstate(cmd.Context(), e); err != nil {
				return err
			}
			lines, err := a.applyServices(cmd.Context(), e.Name, est)
			for _, l := range lines {
				fmt.Fprintln(cmd.ErrOrStderr(), l)
			}
			if err != nil {
				return fmt.Errorf("estate %s is registered, but its services are not all recorded (fix the block and run `kiln estate apply %s`): %w", e.Name, e.Name, err)
			}
			return a.render(cmd.OutOrStdout(), e, func(w io.Writer) error {
				fmt.Fprintf(w, "registered estate %s at %s; start its runs with `kiln run --server URL --estate %s --all`\n", e.Name, e.Dir, e.Name)
				return nil
			})
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the registered estates",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON); err != nil {
				return err
			}
			es, err := a.estates(cmd.Context())
			if err != nil {
				return err
			}
			list, err := es.ListEstates(cmd.Context())
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), list, func(w io.Writer) error {
				t := newTable(w, "NAME", "DIR", "ADDED", "BY")
				for _, e := range list {
					t.row(e.Name, e.Dir, e.CreatedAt.Local().Format(time.DateTime), e.CreatedBy)
				}
				return t.flush()
			})
		},
	}
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Unregister an estate (runs already queued from it still run)",
		Args:  exactArgs(1, "the estate's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			es, err := a.estates(cmd.Context())
			if err != nil {
				return err
			}
			if err := es.RemoveEstate(cmd.Context(), args[0]); err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), map[string]string{"removed": args[0]}, func(w io.Writer) error {
				fmt.Fprintf(w, "removed estate %s\n", args[0])
				return nil
			})
		},
	}
	apply := &cobra.Command{
		Use:   "apply NAME",
		Short: "Read a registered estate again and record its service blocks (create new services, update their policies)",
		Args:  exactArgs(1, "the estate's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			es, err := a.estates(cmd.Context())
			if err != nil {
				return err
			}
			e, err := es.FindEstate(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			est, err := LoadEstate(e.Dir, nil)
			if err != nil {
				return fmt.Errorf("estate %s does not load, so nothing was applied: %w", e.Dir, err)
			}
			lines, err := a.applyServices(cmd.Context(), e.Name, est)
			return a.render(cmd.OutOrStdout(), map[string]any{"estate": e.Name, "services": lines}, func(w io.Writer) error {
				for _, l := range lines {
					fmt.Fprintln(w, l)
				}
				if len(lines) == 0 && err == nil {
					fmt.Fprintf(w, "estate %s declares no services\n", e.Name)
				}
				return err
			})
		},
	}
	cmd.AddCommand(add, list, remove, apply)
	return cmd
}
