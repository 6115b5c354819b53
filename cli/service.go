package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/rollout"
)

// addRolloutCommands adds services, rollouts, drift, break-glass and fleet
// refresh: `service` and `rollout` at the top, `drift` and `shell` to the
// `instance` group, `drift` and `refresh` to the `fleet` group (creating
// the groups if no other file did).
func (a *App) addRolloutCommands(root *cobra.Command) {
	svcCmd := a.serviceCmd()
	root.AddCommand(svcCmd, a.rolloutCmd(), a.serviceProxyCmd())
	a.addPauseCommands(root, svcCmd) // pause.go
	sub := func(name, short string) *cobra.Command {
		for _, c := range root.Commands() {
			if c.Name() == name {
				return c
			}
		}
		g := group(name, short)
		root.AddCommand(g)
		return g
	}
	sub("instance", "Launch, list and manage instances made from image versions").AddCommand(a.instanceDriftCmd(), a.instanceShellCmd())
	sub("fleet", "Reports on the whole estate").AddCommand(a.fleetDriftCmd(), a.fleetRefreshCmd())
}

// rolloutServices returns the services with the service and rollout
// stores, which the registry's database keeps.
func (a *App) rolloutServices(ctx context.Context) (*Services, kiln.ServiceStore, kiln.RolloutStore, error) {
	svc, err := a.Services(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	ss, rs := svc.ServiceStore, svc.RolloutStore
	if ss == nil || rs == nil {
		return nil, nil, nil, kiln.Errorf(kiln.EUNAVAILABLE, "this kiln setup keeps no services; use a kiln database (--database)")
	}
	return svc, ss, rs, nil
}

// FrontEndCommand is how kiln starts a service's front end: this
// executable as `kiln __service-proxy NAME` on cfg's data directory and
// database. The front end outlives kiln serve and never works through a
// server, so it gets only what it needs, not the server's environment
// (tokens, cloud credentials): the locale, time zone, PATH and HOME, the
// database URL (in the environment, not on a command line every user can
// read: it may hold a password) and the signing key's path.
func FrontEndCommand(cfg Config) func(service string) (argv, env []string) {
	return func(service string) ([]string, []string) {
		exe, err := os.Executable()
		if err != nil {
			exe = os.Args[0]
		}
		env := childEnv("HOME")
		if cfg.Database != "" {
			env = append(env, "KILN_DATABASE="+cfg.Database)
		}
		if cfg.SigningKey != "" {
			env = append(env, "KILN_SIGNING_KEY="+cfg.SigningKey)
		}
		return []string{exe, "--data-dir", cfg.DataDir, "__service-proxy", service}, env
	}
}

// childEnv is the environment of a process kiln leaves running: PATH
// (a default one if unset), the locale and time zone of this process,
// and the other variables named, when set.
func childEnv(names ...string) []string {
	env := []string{"PATH=" + cmp.Or(os.Getenv("PATH"), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")}
	for _, n := range append([]string{"LANG", "LC_ALL", "TZ"}, names...) {
		if v, ok := os.LookupEnv(n); ok {
			env = append(env, n+"="+v)
		}
	}
	return env
}

func (a *App) serviceCmd() *cobra.Command {
	c := group("service", "Services: instances of one image behind a loopback front end")
	c.AddCommand(a.serviceCreateCmd(), a.serviceSetCmd(), a.serviceListCmd(), a.serviceShowCmd(), a.serviceStartCmd(), a.serviceStopCmd(), a.serviceDeleteCmd())
	return c
}

func (a *App) serviceCreateCmd() *cobra.Command {
	var (
		s                    kiln.Service
		port, health         string
		minHealthy, maxSurge int
		noStart              bool
		policy               policyFlags
	)
	c := &cobra.Command{
		Use:   "create NAME --image IMAGE --env ENV --replicas N --port 127.0.0.1:PORT",
		Short: "Define a service and start its front end (instances come with `kiln rollout`)",
		Example: "  kiln service create web --image appserver --env prod --replicas 4 --port 127.0.0.1:18080 --health http:/healthz\n" +
			"  kiln rollout web --to appserver-4",
		Args: exactArgs(1, "the service name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Name = args[0]
			var err error
			if s.Listen, err = kiln.ParseListen("--port", port); err != nil {
				return err
			}
			if s.Health, err = kiln.ParseHealthCheck("--health", health); err != nil {
				return err
			}
			s.MaxSurge, s.MinHealthyPercent = maxSurge, minHealthy
			if err := policy.apply(cmd.Flags(), &s); err != nil {
				return err
			}
			_, ss, _, err := a.rolloutServices(cmd.Context())
			if err != nil {
				return err
			}
			h, err := a.rolloutHost(cmd)
			if err != nil {
				return err
			}
			if err := ss.CreateService(cmd.Context(), &s); err != nil {
				return err
			}
			if !noStart {
				if err := h.StartFrontEnd(cmd.Context(), s.Name); err != nil {
					return fmt.Errorf("service %s is recorded but its front end did not start (retry with `kiln service start %s`): %w", s.Name, s.Name, err)
				}
			}
			return a.render(cmd.OutOrStdout(), &s, func(w io.Writer) error {
				on := ""
				if s.Platform != "" {
					on = " on the " + s.Platform + " platform"
				}
				fmt.Fprintf(w, "service %s: %d × %s in %s%s, front end http://%s\n", s.Name, s.Replicas, s.Image, s.Environment, on, s.Listen)
				if s.Following() {
					fmt.Fprintf(w, "it follows the %s channel of %s: kiln serve rolls it out when the channel moves (and now, if the channel holds a version)\n", s.Environment, s.Image)
				} else {
					fmt.Fprintf(w, "launch its instances with `kiln rollout %s --to %s-N`\n", s.Name, s.Image)
				}
				return nil
			})
		},
	}
	f := c.Flags()
	f.StringVar(&s.Image, "image", "", "image line the service runs (required)")
	f.StringVar(&s.Environment, "env", "", "environment (required)")
	f.IntVar(&s.Replicas, "replicas", 1, "number of instances")
	f.StringVar(&port, "port", "", "front end address on loopback, 127.0.0.1:PORT or PORT (required)")
	f.IntVar(&s.Port, "instance-port", 80, "port the application listens on inside each instance")
	f.StringVar(&health, "health", "tcp", "health check: http:/PATH (2xx/3xx is healthy) or tcp")
	f.IntVar(&maxSurge, "max-surge", 1, "instances a rollout may run above the replica count (and the batch size unless --batch-size)")
	f.IntVar(&s.BatchSize, "batch-size", 0, "new instances per rollout batch (0: --max-surge); above --max-surge old instances go first, down to --min-healthy")
	f.IntVar(&minHealthy, "min-healthy", 100, "percentage of replicas that must serve during a rollout")
	f.DurationVar(&s.BakeTime, "bake-time", kiln.DefaultBakeTime, "how long each batch is watched before old instances go")
	f.Float64Var(&s.MaxErrorRate, "max-error-rate", kiln.DefaultMaxErrorRate, "share of failed requests during bake that rolls back (0.01 = 1%)")
	f.BoolVar(&noStart, "no-start", false, "record the service without starting its front end")
	policy.register(f, false)
	f.StringVar(&s.Platform, "platform", "", "platform its instances run on: "+strings.Join(kiln.LaunchPlatforms, " or ")+" (default local; vm boots the versions' disk images under QEMU)")
	for _, n := range []string{"image", "env", "port"} {
		_ = c.MarkFlagRequired(n)
	}
	return c
}

func (a *App) serviceSetCmd() *cobra.Command {
	var (
		policy               policyFlags
		maxSurge, minHealthy int
		batchSize            int
		bake                 time.Duration
		maxErrorRate         float64
	)
	c := &cobra.Command{
		Use:   "set NAME [flags]",
		Short: "Change a service's follow mode, rollout policy and rollout settings (what is not given stays)",
		Example: "  kiln service set web --window \"mon-fri 02:00-05:00 Europe/Berlin\" --limit 2/24h\n" +
			"  kiln service set web --follow none   # pause the autopilot for this service\n" +
			"  kiln service set web --metrics-port 19080 --gate-prometheus http://127.0.0.1:9090 \\\n" +
			"      --gate-query 'sum(rate(kiln_frontend_errors_total{service=\"web\"}[1m])) / sum(rate(kiln_frontend_requests_total{service=\"web\"}[1m]))' --gate-max 0.01 --gate-for 30s",
		Args: exactArgs(1, "the service name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			_, ss, _, err := a.rolloutServices(ctx)
			if err != nil {
				return err
			}
			s, err := ss.FindService(ctx, args[0])
			if err != nil {
				return err
			}
			f := cmd.Flags()
			metricsBefore := s.MetricsListen
			if err := policy.apply(f, s); err != nil {
				return err
			}
			if f.Changed("max-surge") {
				s.MaxSurge = maxSurge
			}
			if f.Changed("min-healthy") {
				s.MinHealthyPercent = minHealthy
			}
			if f.Changed("batch-size") {
				s.BatchSize = batchSize
			}
			if f.Changed("bake-time") {
				s.BakeTime = bake
			}
			if f.Changed("max-error-rate") {
				s.MaxErrorRate = maxErrorRate
			}
			if err := ss.UpdateService(ctx, s); err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), s, func(w io.Writer) error {
				fmt.Fprintf(w, "service %s updated\n", s.Name)
				printPolicy(w, s, nil)
				if s.Estate != "" {
					fmt.Fprintf(w, "note: estate %s defines this service; `kiln estate apply %s` puts its block's policy back\n", s.Estate, s.Estate)
				}
				if s.MetricsListen != metricsBefore {
					fmt.Fprintf(w, "the front end takes the new metrics address when it starts again (`kiln service stop %s && kiln service start %s`)\n", s.Name, s.Name)
				}
				return nil
			})
		},
	}
	f := c.Flags()
	policy.register(f, true)
	f.IntVar(&maxSurge, "max-surge", 1, "instances a rollout may run above the replica count (and the batch size unless --batch-size)")
	f.IntVar(&batchSize, "batch-size", 0, "new instances per rollout batch (0: --max-surge)")
	f.IntVar(&minHealthy, "min-healthy", 100, "percentage of replicas that must serve during a rollout")
	f.DurationVar(&bake, "bake-time", kiln.DefaultBakeTime, "how long each batch is watched before old instances go")
	f.Float64Var(&maxErrorRate, "max-error-rate", kiln.DefaultMaxErrorRate, "share of failed requests during bake that rolls back (0.01 = 1%)")
	return c
}

func (a *App) serviceListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List services with their version and front end",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, ss, _, err := a.rolloutServices(cmd.Context())
			if err != nil {
				return err
			}
			h, err := a.rolloutHost(cmd)
			if err != nil {
				return err
			}
			list, err := ss.ListServices(cmd.Context())
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), list, func(w io.Writer) error {
				t := newTable(w, "SERVICE", "IMAGE", "ENV", "REPLICAS", "VERSION", "FOLLOW", "FRONT END", "RUNNING")
				for _, s := range list {
					ver := ""
					if !s.Version.IsZero() {
						ver = s.Version.String()
					}
					running, err := h.FrontEndRunning(cmd.Context(), s.Name)
					if err != nil {
						return err
					}
					t.row(s.Name, s.Image, s.Environment, strconv.Itoa(s.Replicas), ver, s.Follow, s.Listen, yesNo(running))
				}
				return t.flush()
			})
		},
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (a *App) serviceShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a service's instances, front end and recent rollouts",
		Args:  exactArgs(1, "the service name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			_, ss, rs, err := a.rolloutServices(ctx)
			if err != nil {
				return err
			}
			s, err := ss.FindService(ctx, args[0])
			if err != nil {
				return err
			}
			ms, err := ss.ListMembers(ctx, s.Name)
			if err != nil {
				return err
			}
			rolls, err := rs.ListRollouts(ctx, s.Name, 5)
			if err != nil {
				return err
			}
			proxy, _ := ss.ProxyStatus(ctx, s.Name)
			h, err := a.rolloutHost(cmd)
			if err != nil {
				return err
			}
			running, err := h.FrontEndRunning(ctx, s.Name)
			if err != nil {
				return err
			}
			var follow *rollout.FollowStatus
			if svcs, err := a.Services(ctx); err == nil && svcs.Channels != nil {
				f := &rollout.Follower{Services: ss, Rollouts: rs, Channels: svcs.Channels}
				if follow, err = f.Status(ctx, s); err != nil {
					return err
				}
			}
			return a.render(cmd.OutOrStdout(), map[string]any{"service": s, "members": ms, "front_end": proxy, "rollouts": rolls, "follow": follow}, func(w io.Writer) error {
				fmt.Fprintf(w, "service %s: %d × %s in %s, health %s, batches of %d, max surge %d, min healthy %d, bake %s, max error rate %g\n",
					s.Name, s.Replicas, s.Image, s.Environment, s.Health, s.Batch(), s.MaxSurge, s.MinHealthy(), s.BakeTime, s.MaxErrorRate)
				printPolicy(w, s, follow)
				fmt.Fprintf(w, "front end http://%s: ", s.Listen)
				switch {
				case !running:
					fmt.Fprintf(w, "not running (start it with `kiln service start %s`)\n", s.Name)
				case proxy != nil:
					fmt.Fprintf(w, "running, %d backends, %d requests, %d errors\n", proxy.Backends, proxy.Requests, proxy.Errors)
				default:
					fmt.Fprintln(w, "running")
				}
				t := newTable(w, "INSTANCE", "VERSION", "STATE", "ADDRESS")
				for _, m := range ms {
					t.row(m.InstanceID, m.Version.String(), string(m.State), m.Address)
				}
				if err := t.flush(); err != nil {
					return err
				}
				if len(rolls) > 0 {
					fmt.Fprintln(w)
					t = newTable(w, "ROLLOUT", "FROM", "TO", "STATE", "BATCHES", "STARTED", "REASON")
					for _, r := range rolls {
						t.row(strconv.FormatInt(r.ID, 10), orDash(r.From), r.To.String(), string(r.State), strconv.Itoa(r.Batch),
							r.StartedAt.Local().Format(time.DateTime), r.Reason)
					}
					return t.flush()
				}
				return nil
			})
		},
	}
}

func orDash(r kiln.VersionRef) string {
	if r.IsZero() {
		return "-"
	}
	return r.String()
}

func (a *App) serviceStartCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "start NAME",
		Short: "Start a service's front end (a supervised process that outlives this command)",
		Args:  exactArgs(1, "the service name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, ss, _, err := a.rolloutServices(cmd.Context())
			if err != nil {
				return err
			}
			s, err := ss.FindService(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			h, err := a.rolloutHost(cmd)
			if err != nil {
				return err
			}
			if err := h.StartFrontEnd(cmd.Context(), s.Name); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "front end of %s running at http://%s\n", s.Name, s.Listen)
			return nil
		},
	}
}

func (a *App) serviceStopCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stop NAME",
		Short: "Stop a service's front end (its instances keep running)",
		Args:  exactArgs(1, "the service name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := a.rolloutHost(cmd)
			if err != nil {
				return err
			}
			if err := h.StopFrontEnd(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "front end of %s stopped\n", args[0])
			return nil
		},
	}
}

func (a *App) serviceDeleteCmd() *cobra.Command {
	var destroy bool
	c := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a service and stop its front end (--destroy-instances destroys its instances first)",
		Args:  exactArgs(1, "the service name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := a.rolloutHost(cmd)
			if err != nil {
				return err
			}
			destroyed, err := h.RemoveService(cmd.Context(), args[0], destroy)
			for _, id := range destroyed {
				fmt.Fprintf(cmd.OutOrStdout(), "%s destroyed\n", id)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "service %s deleted\n", args[0])
			return nil
		},
	}
	c.Flags().BoolVar(&destroy, "destroy-instances", false, "destroy the service's instances (it serves nothing after)")
	return c
}

// serviceProxyCmd is `kiln __service-proxy NAME`: the supervised front-end
// process `kiln service start` runs detached. It holds the service's lock
// for its whole life; a second one exits at once.
func (a *App) serviceProxyCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "__service-proxy NAME",
		Short:  "Run a service's front end (started by kiln, not by hand)",
		Hidden: true,
		Args:   exactArgs(1, "the service name"),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			// The process that started this one waits on the readiness
			// pipe: "ready" once listening, or why not.
			ready := rollout.ReadyPipe()
			defer func() { rollout.ReportReady(ready, err); ready = nil }()
			lock, err := rollout.LockFrontEnd(a.cfg.DataDir, args[0])
			if err != nil {
				return err
			}
			if lock == nil {
				return kiln.Errorf(kiln.ECONFLICT, "the front end of %s runs already", args[0])
			}
			defer lock.Close()
			_, ss, _, err := a.rolloutServices(cmd.Context())
			if err != nil {
				return err
			}
			fe := &rollout.FrontEnd{Services: ss, Service: args[0], Logger: a.Logger(),
				Ready: func() { rollout.ReportReady(ready, nil); ready = nil }}
			return fe.Run(cmd.Context())
		},
	}
}
