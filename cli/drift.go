package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
)

// drift compares one instance with its image.
func (a *App) drift(ctx context.Context, svc *Services, inst *kiln.Instance) (*kiln.Drift, error) {
	if svc.Drift == nil {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this kiln has no platform to show what an instance changed; run drift on the machine where the instance runs")
	}
	var manifest []kiln.Package
	if v, err := svc.Registry.FindVersion(ctx, inst.Version); err == nil {
		manifest = v.Provenance.Packages
	}
	d, err := svc.Drift(ctx, inst, manifest)
	if err != nil {
		return nil, err
	}
	d.InstanceID, d.Version, d.Tainted = inst.ID, inst.Version, inst.Tainted
	return d, nil
}

func (a *App) findInstance(ctx context.Context, svc *Services, name string) (*kiln.Instance, error) {
	if svc.Inventory == nil {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this kiln setup keeps no instance inventory")
	}
	return svc.Inventory.FindInstance(ctx, name)
}

func (a *App) instanceDriftCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "drift NAME",
		Short: "Show what an instance changed in itself: files and packages against its image (volatile paths ignored)",
		Args:  exactArgs(1, "the instance name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			svc, err := a.Services(ctx)
			if err != nil {
				return err
			}
			inst, err := a.findInstance(ctx, svc, args[0])
			if err != nil {
				return err
			}
			d, err := a.drift(ctx, svc, inst)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), d, func(w io.Writer) error {
				if !d.Drifted() {
					fmt.Fprintf(w, "%s: no drift from %s (%d volatile paths ignored)\n", inst.Name, inst.Version, d.Ignored)
				} else {
					t := newTable(w, "CHANGE", "PATH OR PACKAGE", "FROM", "TO")
					for _, f := range d.Files {
						t.row(string(f.Kind), f.Path, "", "")
					}
					for _, p := range d.Packages {
						t.row("package "+string(p.Kind), p.Package, p.From, p.To)
					}
					if err := t.flush(); err != nil {
						return err
					}
					fmt.Fprintf(w, "%s drifted from %s: %d files, %d packages (%d volatile paths ignored); replace it with a rollout rather than fixing it in place\n",
						inst.Name, inst.Version, len(d.Files), len(d.Packages), d.Ignored)
				}
				if inst.Tainted {
					fmt.Fprintf(w, "%s is tainted: break-glass access was opened on it\n", inst.Name)
				}
				return nil
			})
		},
	}
}

func (a *App) fleetDriftCmd() *cobra.Command {
	var env string
	c := &cobra.Command{
		Use:   "drift [--env ENV]",
		Short: "List this machine's running instances (local and vm) with their drift and taint",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			svc, err := a.Services(ctx)
			if err != nil {
				return err
			}
			if svc.Inventory == nil {
				return kiln.Errorf(kiln.EUNAVAILABLE, "this kiln setup keeps no instance inventory")
			}
			var insts []*kiln.Instance
			for _, platform := range kiln.LaunchPlatforms {
				some, _, err := svc.Inventory.ListInstances(ctx, kiln.InstanceFilter{Environment: env, Platform: platform,
					States: []kiln.InstanceState{kiln.InstanceRunning, kiln.InstanceDegraded, kiln.InstanceStopped}})
				if err != nil {
					return err
				}
				insts = append(insts, some...)
			}
			type row struct {
				Instance string      `json:"instance"`
				Drift    *kiln.Drift `json:"drift,omitempty"`
				Error    string      `json:"error,omitempty"`
			}
			var rows []row
			for _, inst := range insts {
				d, err := a.drift(ctx, svc, inst)
				r := row{Instance: inst.Name, Drift: d}
				if err != nil {
					if errors.Is(err, context.Canceled) {
						return err
					}
					r.Error = kiln.ErrorMessage(err)
				}
				rows = append(rows, r)
			}
			return a.render(cmd.OutOrStdout(), rows, func(w io.Writer) error {
				t := newTable(w, "INSTANCE", "VERSION", "DRIFTED", "FILES", "PACKAGES", "TAINTED")
				drifted := 0
				for i, r := range rows {
					if r.Drift == nil {
						t.row(r.Instance, insts[i].Version.String(), "?", "", "", yesNo(insts[i].Tainted)+" ("+r.Error+")")
						continue
					}
					if r.Drift.Drifted() || r.Drift.Tainted {
						drifted++
					}
					t.row(r.Instance, insts[i].Version.String(), yesNo(r.Drift.Drifted()), strconv.Itoa(len(r.Drift.Files)), strconv.Itoa(len(r.Drift.Packages)), yesNo(r.Drift.Tainted))
				}
				if err := t.flush(); err != nil {
					return err
				}
				fmt.Fprintf(w, "%d of %d instances drifted or tainted; `kiln fleet refresh` replaces tainted ones\n", drifted, len(rows))
				return nil
			})
		},
	}
	c.Flags().StringVar(&env, "env", "", "only instances of this environment")
	return c
}

func (a *App) instanceShellCmd() *cobra.Command {
	var (
		breakGlass bool
		reason     string
	)
	c := &cobra.Command{
		Use:   "shell NAME --break-glass --reason \"…\"",
		Short: "Open a root shell in an instance: recorded, and the instance is tainted until replaced",
		Long: "Instances are never changed in place; manual access is a break-glass step. It records who, when and why " +
			"(in the break-glass log and the audit log), marks the instance tainted — reports show it until a rollout replaces it — " +
			"and then opens an interactive shell (no terminal emulation: line by line).",
		Args: exactArgs(1, "the instance name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !breakGlass {
				return kiln.FieldErrorf(kiln.EINVALID, "--break-glass", "a shell on an instance is break-glass access: it taints the instance until it is replaced. Run `kiln instance shell %s --break-glass --reason \"why\"` if you mean it", args[0])
			}
			if len(reason) < 3 {
				return kiln.FieldErrorf(kiln.EINVALID, "--reason", "say why you need the shell, e.g. --reason \"INC-123: inspect stuck queue\"; it is recorded with your name")
			}
			ctx := cmd.Context()
			svc, _, rs, err := a.rolloutServices(ctx)
			if err != nil {
				return err
			}
			inst, err := a.findInstance(ctx, svc, args[0])
			if err != nil {
				return err
			}
			if st, err := svc.Platform.State(ctx, inst.ID); err != nil {
				return err
			} else if st != kiln.InstanceRunning && st != kiln.InstanceDegraded {
				return kiln.Errorf(kiln.ECONFLICT, "instance %s is %s; a shell opens only in a running instance", inst.Name, st)
			}
			// Recorded before the shell opens: access is never unrecorded.
			if _, err := rs.BreakGlass(ctx, &kiln.BreakGlass{InstanceID: inst.ID, Reason: reason}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "break-glass access to %s recorded (%s: %s); %s is now tainted\n", inst.Name, kiln.ActorFrom(ctx), reason, inst.Name)
			code, err := svc.Platform.Exec(ctx, inst.ID, []string{"/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -i; else exec sh -i; fi"},
				kiln.ExecIO{Stdin: cmd.InOrStdin(), Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitStatus{code}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&breakGlass, "break-glass", false, "confirm this is break-glass access (required)")
	c.Flags().StringVar(&reason, "reason", "", "why you need the shell (required; recorded)")
	return c
}
