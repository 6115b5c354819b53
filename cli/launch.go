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
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/verify"
)

// addInstanceLifecycle adds the platform commands (launch, stop, destroy,
// exec) to the `instance` group, creating the group if no other file did.
func (a *App) addInstanceLifecycle(root *cobra.Command) {
	var inst *cobra.Command
	for _, c := range root.Commands() {
		if c.Name() == "instance" {
			inst = c
		}
	}
	if inst == nil {
		inst = group("instance", "Launch, list and manage instances made from image versions")
		root.AddCommand(inst)
	}
	inst.AddCommand(a.instanceLaunchCmd(), a.instanceStopCmd(), a.instanceDestroyCmd(), a.instanceExecCmd())
	a.addRolloutCommands(root)
}

func (a *App) instanceLaunchCmd() *cobra.Command {
	var (
		name, env, config, estate string
		platform                  string
		vf                        varFlags
		ports                     []string
		timeout                   time.Duration
		force                     bool
	)
	c := &cobra.Command{
		Use:   "launch IMAGE-N",
		Short: "Boot an instance from a version's image on this machine's local (nspawn) or vm (QEMU) platform",
		Args:  exactArgs(1, "a version name such as appserver-3"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := kiln.ParseVersionRef("version", args[0])
			if err != nil {
				return err
			}
			if err := kiln.ValidatePlatform("--platform", platform); err != nil {
				return err
			}
			var fwd []kiln.PortForward
			for _, p := range ports {
				f, err := parsePort(p)
				if err != nil {
					return err
				}
				fwd = append(fwd, f)
			}
			cfg, err := launchConfig(&vf, estate, config, ref.Image, env)
			if err != nil {
				return err
			}
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			if svc.Launcher == nil {
				return kiln.Errorf(kiln.EUNAVAILABLE, "this kiln setup launches no instances; run `kiln instance launch` on the machine with the platform")
			}
			if name == "" {
				name = fmt.Sprintf("%s-%s", ref, strconv.FormatInt(time.Now().Unix()%100000, 36))
			}
			l, err := svc.Launcher.Launch(cmd.Context(), launch.Request{Version: ref, ID: name, Environment: env, Ports: fwd, Timeout: timeout, Gate: launch.Usable, Config: cfg, Force: force, Platform: platform})
			if err != nil {
				return err
			}
			inst, res := l.Instance, l.Launch
			return a.render(cmd.OutOrStdout(), inst, func(w io.Writer) error {
				fmt.Fprintf(w, "%s %s on the %s platform\n", name, res.State, inst.Platform)
				if inst.ConfigDigest != "" {
					fmt.Fprintf(w, "  config %s from %s\n", inst.ConfigDigest, inst.ConfigSource)
				}
				for _, p := range res.Ports {
					fmt.Fprintf(w, "  %s → port %d\n", p.Host, p.Guest)
				}
				if len(res.FailedUnits) > 0 {
					fmt.Fprintf(w, "  failed units: %s\n", strings.Join(res.FailedUnits, ", "))
				}
				return nil
			})
		},
	}
	c.Flags().StringVar(&name, "name", "", "instance name (default: version name plus a suffix)")
	c.Flags().StringVar(&env, "env", "dev", "environment the instance belongs to")
	c.Flags().StringArrayVar(&ports, "port", nil, "forward HOSTPORT:GUESTPORT (or 127.0.0.1:HOSTPORT:GUESTPORT) from host loopback into the instance (repeatable)")
	c.Flags().DurationVar(&timeout, "timeout", 0, "how long to wait for the instance to boot (default 60s)")
	c.Flags().StringVar(&config, "config", "", "give the instance the files of this directory (or this one file) as credentials (docs/configuration.md)")
	c.Flags().StringVar(&estate, "estate", "", "give the instance the configuration the estate declares for the image in --env")
	c.Flags().BoolVar(&force, "force", false, "launch the version even if it is revoked (recorded in the audit log)")
	c.Flags().StringVar(&platform, "platform", "", "platform to boot on: "+strings.Join(kiln.LaunchPlatforms, " or ")+" (default local; vm boots the version's disk image under QEMU)")
	vf.add(c)
	return c
}

// launchConfig is the configuration `--config PATH` or `--estate DIR`
// (with --env) gives a launch; nil when neither is set.
func launchConfig(vf *varFlags, estate, path, image, env string) (*launch.Config, error) {
	switch {
	case estate != "" && path != "":
		return nil, kiln.FieldErrorf(kiln.EINVALID, "--config", "give --config or --estate, not both")
	case path != "":
		return launch.ConfigFromPath(path)
	case estate == "":
		return nil, nil
	}
	est, err := vf.load(estate)
	if err != nil {
		return nil, err
	}
	c := est.ConfigFor(image, env)
	if c == nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "--env", "the estate %s declares no config for %s in environment %q; add a config block to that environment of its pipeline (docs/definitions.md)", est.Dir, image, env)
	}
	return launch.ConfigFromEstate(c, EstateConfigSource(est.Dir, env)), nil
}

// EstateConfigSource names an estate environment's configuration in the
// inventory.
func EstateConfigSource(dir, env string) string {
	return "estate:" + dir + " env " + env
}

// parsePort parses HOSTPORT:GUESTPORT or ADDR:HOSTPORT:GUESTPORT; the
// host address is always loopback.
func parsePort(s string) (kiln.PortForward, error) {
	parts := strings.Split(s, ":")
	host := "127.0.0.1"
	if len(parts) == 3 {
		host, parts = parts[0], parts[1:]
	}
	if len(parts) != 2 {
		return kiln.PortForward{}, kiln.FieldErrorf(kiln.EINVALID, "--port", "%q is not HOSTPORT:GUESTPORT, e.g. 8080:80", s)
	}
	hp, err1 := strconv.Atoi(parts[0])
	gp, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || hp < 0 || hp > 65535 || gp < 1 || gp > 65535 {
		return kiln.PortForward{}, kiln.FieldErrorf(kiln.EINVALID, "--port", "%q: ports must be numbers from 1 to 65535 (host port 0 picks a free one)", s)
	}
	return kiln.PortForward{Host: fmt.Sprintf("%s:%d", host, hp), Guest: gp}, nil
}

func (a *App) instanceStopCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stop NAME",
		Short: "Shut an instance down in an orderly way (it can be destroyed later)",
		Args:  exactArgs(1, "the instance name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			if err := svc.Platform.Stop(cmd.Context(), args[0]); err != nil {
				return err
			}
			a.recordState(cmd, svc, args[0], kiln.InstanceStopped, "stopped by "+kiln.ActorFrom(cmd.Context()))
			fmt.Fprintf(cmd.OutOrStdout(), "%s stopped\n", args[0])
			return nil
		},
	}
}

func (a *App) instanceDestroyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "destroy NAME",
		Short: "Destroy an instance and everything it wrote",
		Args:  exactArgs(1, "the instance name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			if err := svc.Platform.Destroy(cmd.Context(), args[0]); err != nil {
				return err
			}
			a.recordState(cmd, svc, args[0], kiln.InstanceDestroyed, "destroyed by "+kiln.ActorFrom(cmd.Context()))
			fmt.Fprintf(cmd.OutOrStdout(), "%s destroyed\n", args[0])
			return nil
		},
	}
}

func (a *App) recordState(cmd *cobra.Command, svc *Services, id string, st kiln.InstanceState, reason string) {
	if svc.Inventory == nil {
		return
	}
	if _, err := svc.Inventory.SetInstanceState(cmd.Context(), id, st, reason); err != nil && kiln.ErrorCode(err) != kiln.ENOTFOUND {
		a.Logger().Warn("record instance state", "instance", id, "err", err)
	}
}

func (a *App) instanceExecCmd() *cobra.Command {
	var (
		readOnly, breakGlass bool
		reason               string
	)
	c := &cobra.Command{
		Use:   "exec NAME (--read-only | --break-glass --reason \"…\") -- COMMAND [ARG…]",
		Short: "Run a command inside an instance, read-only or as recorded break-glass access; exits with its status",
		Long: "Instances are never changed in place, so a command in one is one of two things:\n\n" +
			"  --read-only    a diagnostic: it runs as nobody in a view of the instance where every mount is\n" +
			"                 read-only, may read every file but change nothing, gets no input (what ran is\n" +
			"                 exactly the recorded command line), and is recorded in the audit log;\n" +
			"  --break-glass  anything else, interactive or writing: it needs --reason, is recorded in the\n" +
			"                 break-glass and audit logs, and taints the instance until a rollout replaces it.\n\n" +
			"Examples:\n  kiln instance exec web-1 --read-only -- journalctl -u nginx -n 50\n" +
			"  kiln instance exec web-1 --break-glass --reason \"INC-123: flush stuck queue\" -- sh -i",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return &usageError{fmt.Errorf("%s needs the instance name and a command after --", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			switch {
			case readOnly && breakGlass:
				return kiln.FieldErrorf(kiln.EINVALID, "--read-only", "give --read-only or --break-glass, not both")
			case !readOnly && !breakGlass:
				return kiln.FieldErrorf(kiln.EINVALID, "--read-only", "say what kind of exec this is: --read-only for a diagnostic that changes nothing (audited), or --break-glass --reason \"why\" for anything interactive or writing (audited, and %s is tainted until replaced)", args[0])
			case breakGlass && len(reason) < 3:
				return kiln.FieldErrorf(kiln.EINVALID, "--reason", "say why you need break-glass access, e.g. --reason \"INC-123: inspect stuck queue\"; it is recorded with your name")
			case readOnly && reason != "":
				return kiln.FieldErrorf(kiln.EINVALID, "--reason", "--reason goes with --break-glass; a read-only exec is recorded with its command line")
			}
			svc, err := a.Services(ctx)
			if err != nil {
				return err
			}
			if svc.Platform == nil || svc.Inventory == nil {
				return kiln.Errorf(kiln.EUNAVAILABLE, "this kiln setup runs no instances here; run `kiln instance exec` on the machine with the platform")
			}
			inst, err := a.findInstance(ctx, svc, args[0])
			if err != nil {
				return err
			}
			argv := args[1:]
			stdio := kiln.ExecIO{Stdin: cmd.InOrStdin(), Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()}
			// Recorded before the command runs: access is never unrecorded.
			if breakGlass {
				if svc.RolloutStore == nil {
					return kiln.Errorf(kiln.EUNAVAILABLE, "this kiln setup keeps no break-glass log; use a kiln database (--database)")
				}
				if _, err := svc.RolloutStore.BreakGlass(ctx, &kiln.BreakGlass{InstanceID: inst.ID, Reason: reason}); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "break-glass access to %s recorded (%s: %s); %s is now tainted\n", inst.Name, kiln.ActorFrom(ctx), reason, inst.Name)
			} else {
				if svc.Audit == nil {
					return kiln.Errorf(kiln.EUNAVAILABLE, "this kiln setup keeps no audit log, and a read-only exec is audited; use a kiln database (--database)")
				}
				if err := svc.Audit.AppendAudit(ctx, &kiln.AuditEntry{Action: "instance.exec.read-only", Target: "instance " + inst.Name, Detail: shellQuote(argv)}); err != nil {
					return err
				}
				argv = verify.ReadOnlyArgv(argv)
				stdio.Stdin = strings.NewReader("")
			}
			code, err := svc.Platform.Exec(ctx, inst.ID, argv, stdio)
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitStatus{code}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&readOnly, "read-only", false, "a diagnostic: run as nobody with every mount read-only and no input (audited)")
	c.Flags().BoolVar(&breakGlass, "break-glass", false, "anything interactive or writing: recorded, and the instance is tainted until replaced")
	c.Flags().StringVar(&reason, "reason", "", "why you need break-glass access (required with --break-glass; recorded)")
	return c
}

// shellQuote renders argv as one command line a shell would split back.
func shellQuote(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		plain := func(r rune) bool {
			return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@%+", r)
		}
		if a != "" && strings.IndexFunc(a, func(r rune) bool { return !plain(r) }) < 0 {
			parts[i] = a
			continue
		}
		parts[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(parts, " ")
}

// exitStatus passes a command's own exit status through kiln's.
type exitStatus struct{ code int }

func (e *exitStatus) Error() string { return fmt.Sprintf("command exited with status %d", e.code) }

// ServiceConfig returns the rollout engine's Config: a service's instances
// get the configuration an estate declares for its image in its
// environment. The estate is dir (--estate, KILN_ESTATE: a directory, or
// the name of a registered estate) when given;
// otherwise the one estate registered with `kiln estate add` that defines
// the service's image line (none: no configuration; several: refused,
// naming them, since kiln cannot tell which one is meant). Both empty
// give nil (no configuration).
func ServiceConfig(dir string, estates kiln.EstateStore) func(context.Context, *kiln.Service) (*launch.Config, error) {
	if dir == "" && estates == nil {
		return nil
	}
	return func(ctx context.Context, svc *kiln.Service) (*launch.Config, error) {
		est, err := serviceEstate(ctx, dir, estates, svc)
		if err != nil || est == nil {
			return nil, err
		}
		return launch.ConfigFromEstate(est.ConfigFor(svc.Image, svc.Environment), EstateConfigSource(est.Dir, svc.Environment)), nil
	}
}

// serviceEstate is the estate a service's configuration comes from (nil
// for none).
func serviceEstate(ctx context.Context, dir string, estates kiln.EstateStore, svc *kiln.Service) (*definition.Estate, error) {
	if dir != "" {
		if !isEstate(dir) && estates != nil {
			if e, err := estates.FindEstate(ctx, dir); err == nil {
				dir = e.Dir // a registered estate's name
			}
		}
		return LoadEstate(dir, nil)
	}
	list, err := estates.ListEstates(ctx)
	if err != nil {
		return nil, err
	}
	var found *definition.Estate
	var names []string
	for _, e := range list {
		est, err := LoadEstate(e.Dir, nil)
		if err != nil {
			return nil, fmt.Errorf("registered estate %s, for the configuration of service %s: %w", e.Name, svc.Name, err)
		}
		if est.Images[svc.Image] == nil {
			continue
		}
		found = est
		names = append(names, fmt.Sprintf("%s (%s)", e.Name, e.Dir))
	}
	if len(names) > 1 {
		return nil, kiln.Errorf(kiln.EINVALID, "image %s of service %s is defined in several registered estates: %s; say which one declares its configuration with --estate DIR (or KILN_ESTATE) where rollouts run",
			svc.Image, svc.Name, strings.Join(names, ", "))
	}
	return found, nil
}
