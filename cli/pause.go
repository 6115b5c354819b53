package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
)

// addPauseCommands adds `service pause|resume` and the `env` group's
// `pause|resume|pauses`: stopping kiln serve's autopilot for a service or
// a whole environment, with a recorded reason.
func (a *App) addPauseCommands(root, service *cobra.Command) {
	service.AddCommand(a.pauseCmd(kiln.PauseService), a.resumeCmd(kiln.PauseService))
	env := group("env", "Environments: stop and resume kiln serve's automatic work in one")
	env.AddCommand(a.pauseCmd(kiln.PauseEnvironment), a.resumeCmd(kiln.PauseEnvironment), a.pausesCmd())
	root.AddCommand(env)
}

func (a *App) pauses(cmd *cobra.Command) (kiln.PauseStore, error) {
	svc, err := a.Services(cmd.Context())
	if err != nil {
		return nil, err
	}
	if svc.Pauses == nil {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this kiln setup keeps no pauses; run it on the server's database or through --server")
	}
	return svc.Pauses, nil
}

func (a *App) pauseCmd(kind kiln.PauseKind) *cobra.Command {
	var reason string
	what := "a service's automatic rollouts (refresh by the autopilot)"
	if kind == kiln.PauseEnvironment {
		what = "every automatic refresh in an environment"
	}
	c := &cobra.Command{
		Use:   "pause NAME --reason \"…\"",
		Short: "Stop " + what + " until resumed; recorded with your name and reason",
		Long: "A pause stops kiln serve's autopilot (refresh { auto = true }) from acting on the " + string(kind) + ". " +
			"Rollouts and refreshes a person asks for still run. `kiln env pauses` lists what is paused.",
		Args: exactArgs(1, "the "+string(kind)+" name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := a.pauses(cmd)
			if err != nil {
				return err
			}
			p := &kiln.Pause{Kind: kind, Name: args[0], Reason: reason}
			if err := p.Validate(); err != nil {
				return err
			}
			if kind == kiln.PauseService {
				// The store keeps a pause of any name (a service may be
				// paused before kiln serve sees it); a person names one
				// that exists, as the API requires.
				if err := a.serviceExists(cmd, p.Name); err != nil {
					return err
				}
			}
			if err := ps.Pause(cmd.Context(), p); err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), p, func(w io.Writer) error {
				fmt.Fprintf(w, "%s %s paused by %s: %s; resume with `kiln %s resume %s`\n", kind, p.Name, p.Actor, p.Reason, cmdGroup(kind), p.Name)
				return nil
			})
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why the autopilot stops (required; recorded)")
	return c
}

func (a *App) serviceExists(cmd *cobra.Command, name string) error {
	svc, err := a.Services(cmd.Context())
	if err != nil {
		return err
	}
	if svc.ServiceStore == nil {
		return kiln.Errorf(kiln.EUNAVAILABLE, "this kiln setup keeps no services; run it on the server's database or through --server")
	}
	_, err = svc.ServiceStore.FindService(cmd.Context(), name)
	return err
}

func cmdGroup(kind kiln.PauseKind) string {
	if kind == kiln.PauseEnvironment {
		return "env"
	}
	return "service"
}

func (a *App) resumeCmd(kind kiln.PauseKind) *cobra.Command {
	return &cobra.Command{
		Use:   "resume NAME",
		Short: "Let kiln serve's autopilot act on the " + string(kind) + " again",
		Args:  exactArgs(1, "the "+string(kind)+" name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := a.pauses(cmd)
			if err != nil {
				return err
			}
			if err := ps.Resume(cmd.Context(), kind, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s resumed\n", kind, args[0])
			return nil
		},
	}
}

func (a *App) pausesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pauses",
		Short: "List the services and environments the autopilot leaves alone, with who paused them and why",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, err := a.pauses(cmd)
			if err != nil {
				return err
			}
			list, err := ps.ListPauses(cmd.Context())
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), list, func(w io.Writer) error {
				if len(list) == 0 {
					fmt.Fprintln(w, "nothing is paused")
					return nil
				}
				t := newTable(w, "KIND", "NAME", "BY", "SINCE", "REASON")
				for _, p := range list {
					t.row(string(p.Kind), p.Name, p.Actor, p.At.UTC().Format("2006-01-02 15:04Z"), p.Reason)
				}
				return t.flush()
			})
		},
	}
}
