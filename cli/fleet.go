package cli

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/advisory"
	"github.com/kiln-project/kiln/fleet"
)

// FormatCSV is accepted by the fleet reports and instance listings.
const FormatCSV = "csv"

// writeCSV writes a header and rows as RFC 4180 CSV.
func writeCSV(w io.Writer, header []string, rows [][]string) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return err
	}
	if err := cw.WriteAll(rows); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// writeRows writes rows in the chosen format: JSON writes v instead, the
// table adds the footer lines.
func (a *App) writeRows(cmd *cobra.Command, v any, header []string, rows [][]string, footer ...string) error {
	w := cmd.OutOrStdout()
	switch a.cfg.Output {
	case FormatJSON:
		return writeJSON(w, v)
	case FormatCSV:
		return writeCSV(w, header, rows)
	}
	t := newTable(w, header...)
	for _, r := range rows {
		t.row(r...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, f := range footer {
		fmt.Fprintln(w, f)
	}
	return nil
}

func (a *App) fleetService(cmd *cobra.Command) (*fleet.Service, error) {
	svc, err := a.fleetServices(cmd.Context())
	if err != nil {
		return nil, err
	}
	fl := fleet.New(svc.Fleet, svc.Advisories)
	fl.Channels = svc.Channels
	return fl, nil
}

func builtAt(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func statusCell(r *kiln.ReportRow) string {
	if r.Unknown {
		return "UNKNOWN"
	}
	return string(r.Status)
}

func (a *App) fleetCmd() *cobra.Command {
	cmd := group("fleet", "Reports on the estate: versions in use, exposure, age, staleness")
	cmd.AddCommand(a.fleetReportCmd(), a.fleetExposedCmd(), a.fleetOverageCmd(), a.fleetStaleCmd(), a.fleetMarkLostCmd())
	return cmd
}

func (a *App) fleetReportCmd() *cobra.Command {
	var (
		env, drill string
		byConfig   bool
	)
	c := &cobra.Command{
		Use:   "report",
		Short: "One row per image version in use with its instance count, sorted by image then version",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON, FormatCSV); err != nil {
				return err
			}
			if drill != "" {
				return a.fleetDrill(cmd, drill, env)
			}
			if byConfig {
				return a.fleetByConfig(cmd, env)
			}
			fl, err := a.fleetService(cmd)
			if err != nil {
				return err
			}
			rep, err := fl.Report(cmd.Context(), env)
			if err != nil {
				return err
			}
			header := []string{"IMAGE", "VERSION", "NAME", "BUILT AT", "STATUS", "INSTANCES", "LOST", "OVER AGE"}
			var rows [][]string
			for _, r := range rep.Rows {
				rows = append(rows, []string{r.Image, strconv.Itoa(r.Number), r.Name, builtAt(r.BuiltAt), statusCell(r),
					strconv.Itoa(r.Instances), strconv.Itoa(r.Lost), strconv.Itoa(r.OverAge)})
			}
			footer := []string{fmt.Sprintf("total: %d instances on %d versions", rep.Instances, rep.Versions)}
			if rep.Unknown > 0 {
				footer = append(footer, fmt.Sprintf("%d instances run versions the registry does not know (status UNKNOWN)", rep.Unknown))
			}
			if len(rep.Policies) > 0 {
				var ps []string
				for _, p := range rep.Policies {
					ps = append(ps, p.Environment+" "+p.MaxAge.String())
				}
				footer = append(footer, fmt.Sprintf("%d instances over their environment's age limit (%s)", rep.OverAge, strings.Join(ps, ", ")))
			}
			return a.writeRows(cmd, rep, header, rows, footer...)
		},
	}
	c.Flags().StringVar(&env, "env", "", "only this environment")
	c.Flags().StringVar(&drill, "drill", "", "list the instances behind a row: IMAGE-N (or IMAGE for every version)")
	c.Flags().BoolVar(&byConfig, "by-config", false, "one row per version and launch configuration digest")
	return c
}

// fleetByConfig is the report grouped by version and configuration.
func (a *App) fleetByConfig(cmd *cobra.Command, env string) error {
	svc, err := a.fleetServices(cmd.Context())
	if err != nil {
		return err
	}
	is, _, err := svc.Inventory.ListInstances(cmd.Context(), kiln.InstanceFilter{Environment: env})
	if err != nil {
		return err
	}
	rows := fleet.ByConfig(is)
	header := []string{"VERSION", "CONFIG", "SOURCE", "ENVIRONMENTS", "INSTANCES"}
	var cells [][]string
	for _, r := range rows {
		d := r.ConfigDigest
		if d == "" {
			d = "(none)"
		}
		cells = append(cells, []string{r.Version.String(), d, r.ConfigSource, strings.Join(r.Environments, ","), strconv.Itoa(r.Instances)})
	}
	return a.writeRows(cmd, map[string]any{"rows": rows}, header, cells)
}

// fleetDrill lists the instances of one version (IMAGE-N) or image.
func (a *App) fleetDrill(cmd *cobra.Command, drill, env string) error {
	svc, err := a.fleetServices(cmd.Context())
	if err != nil {
		return err
	}
	f := kiln.InstanceFilter{Environment: env}
	if ref, err := kiln.ParseVersionRef("--drill", drill); err == nil {
		// "appserver-3" may name version 3 of appserver or an image line
		// called appserver-3: the version wins when it exists.
		if _, ferr := svc.Registry.FindImage(cmd.Context(), drill); ferr != nil {
			f.Version = &ref
		}
	}
	if f.Version == nil {
		if err := kiln.ValidateImageName(drill); err != nil {
			return kiln.FieldErrorf(kiln.EINVALID, "--drill", "%q is neither IMAGE-N nor an image name", drill)
		}
		f.Image = drill
	}
	is, total, err := svc.Inventory.ListInstances(cmd.Context(), f)
	if err != nil {
		return err
	}
	return a.writeInstances(cmd, is, total)
}

func (a *App) fleetExposedCmd() *cobra.Command {
	var (
		fixedIn        []string
		id, env        string
		defaultRelease string
		include        []string
		revoked        bool
	)
	c := &cobra.Command{
		Use:   "exposed",
		Short: "Instances to rebuild: on versions earlier than the fixed-in ones, or exposed to an advisory",
		Long: `List every instance running an earlier version than the first fixed
version of its image, grouped by image and version, with the total to
rebuild. A fix in image X version N means versions ≥ N of X have it; images
not named are not affected.

With --advisory ID, a stored advisory decides: its fixed-in versions for
the images it names, and its Debian package entries matched against each
version's package manifest for the others (showing which version first
fixes them). By default a package counts when Debian would ship a DSA/DLA
for it: findings Debian triaged as no-dsa (minor, postponed, ignored),
unimportant or end-of-life are left out and counted in a note; name them
with --include to count them too (see docs/advisories.md).

Instances on revoked versions (revoked themselves, or through a revoked
base or parent) are always listed, with the finding "revoked: replace
it"; --revoked lists only them.`,
		Args: exactArgs(0, "no arguments (use --fixed-in or --advisory)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON, FormatCSV); err != nil {
				return err
			}
			if n := btoi(id != "") + btoi(len(fixedIn) > 0) + btoi(revoked); n != 1 {
				return kiln.FieldErrorf(kiln.EINVALID, "--fixed-in", "give one of --fixed-in IMAGE-N[,IMAGE-N…], --advisory ID or --revoked")
			}
			fl, err := a.fleetService(cmd)
			if err != nil {
				return err
			}
			fl.DefaultRelease = defaultRelease
			if fl.Include, err = advisory.ParseInclude("--include", include); err != nil {
				return err
			}
			var e *kiln.Exposure
			switch {
			case revoked:
				e, err = fl.ExposedRevoked(cmd.Context(), env)
			case id != "":
				e, err = fl.ExposedTo(cmd.Context(), id, env)
			default:
				var refs []kiln.VersionRef
				if refs, err = advisory.ParseFixedIn("--fixed-in", fixedIn...); err != nil {
					return err
				}
				e, err = fl.ExposedFixedIn(cmd.Context(), refs, env)
			}
			if err != nil {
				return err
			}
			header := []string{"IMAGE", "VERSION", "NAME", "STATUS", "INSTANCES", "FIXED IN", "FINDINGS"}
			var rows [][]string
			for _, r := range e.Rows {
				fix := r.FixedIn
				switch {
				case fix == "" && revoked:
					fix = "—"
				case fix == "":
					fix = "no fix yet"
				}
				rows = append(rows, []string{r.Image, strconv.Itoa(r.Number), r.Name, statusCell(&r.ReportRow),
					strconv.Itoa(r.Instances), fix, strings.Join(r.Findings, "; ")})
			}
			footer := []string{fmt.Sprintf("to rebuild: %d instances on %d versions", e.Instances, e.Versions)}
			for _, n := range e.Notes {
				footer = append(footer, "note: "+n)
			}
			return a.writeRows(cmd, e, header, rows, footer...)
		},
	}
	c.Flags().StringArrayVar(&fixedIn, "fixed-in", nil, "first fixed version of an image, IMAGE-N (repeatable or comma-separated)")
	c.Flags().StringVar(&id, "advisory", "", "a stored advisory's id (see `kiln advisory list`)")
	c.Flags().BoolVar(&revoked, "revoked", false, "only instances on revoked versions (revoked themselves or through their base)")
	c.Flags().StringVar(&env, "env", "", "only this environment")
	c.Flags().StringVar(&defaultRelease, "release", "bookworm", "Debian release assumed for versions whose provenance does not say")
	c.Flags().StringSliceVar(&include, "include", nil, "also count findings Debian triaged: no-dsa, postponed, ignored, unimportant, end-of-life or all")
	return c
}

func (a *App) fleetOverageCmd() *cobra.Command {
	var maxAge, env string
	c := &cobra.Command{
		Use:   "overage",
		Short: "Instances whose image version was built longer ago than an age limit, and by how much",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON, FormatCSV); err != nil {
				return err
			}
			var max kiln.Age
			if maxAge != "" {
				var err error
				if max, err = kiln.ParseMaxAge("--max-age", maxAge); err != nil {
					return err
				}
			}
			fl, err := a.fleetService(cmd)
			if err != nil {
				return err
			}
			o, err := fl.Overage(cmd.Context(), max, env)
			if err != nil {
				return err
			}
			header := []string{"IMAGE", "VERSION", "NAME", "ENV", "BUILT AT", "MAX AGE", "OVER BY", "INSTANCES"}
			var rows [][]string
			for _, r := range o.Rows {
				rows = append(rows, []string{r.Image, strconv.Itoa(r.Number), r.Name, r.Environment, builtAt(r.BuiltAt),
					r.MaxAge.String(), r.Over.String(), strconv.Itoa(r.Instances)})
			}
			return a.writeRows(cmd, o, header, rows, fmt.Sprintf("over age: %d instances on %d versions", o.Instances, o.Versions))
		},
	}
	c.Flags().StringVar(&maxAge, "max-age", "", "age limit, e.g. 90d, 12w, 36h (default: each environment's policy)")
	c.Flags().StringVar(&env, "env", "", "only this environment")
	return c
}

func (a *App) fleetStaleCmd() *cobra.Command {
	var env string
	c := &cobra.Command{
		Use:   "stale",
		Short: "Instances not on the version they should run: their environment's channel version, or else the latest ready",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON, FormatCSV); err != nil {
				return err
			}
			fl, err := a.fleetService(cmd)
			if err != nil {
				return err
			}
			s, err := fl.Stale(cmd.Context(), env)
			if err != nil {
				return err
			}
			header := []string{"IMAGE", "VERSION", "NAME", "STATUS", "SHOULD RUN", "AGAINST", "BEHIND", "INSTANCES"}
			var rows [][]string
			for _, r := range s.Rows {
				rows = append(rows, []string{r.Image, strconv.Itoa(r.Number), r.Name, statusCell(&r.ReportRow), r.Latest,
					r.Against, strconv.Itoa(r.Behind), strconv.Itoa(r.Instances)})
			}
			return a.writeRows(cmd, s, header, rows, fmt.Sprintf("stale: %d instances on %d versions", s.Instances, s.Versions))
		},
	}
	c.Flags().StringVar(&env, "env", "", "only this environment")
	return c
}

func (a *App) fleetMarkLostCmd() *cobra.Command {
	var after time.Duration
	c := &cobra.Command{
		Use:   "mark-lost",
		Short: "Mark instances not seen (checked in) for longer than --after as lost",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl, err := a.fleetService(cmd)
			if err != nil {
				return err
			}
			n, err := fl.MarkLost(cmd.Context(), after)
			if err != nil {
				return err
			}
			cmd.Printf("marked %d instances lost\n", n)
			return nil
		},
	}
	c.Flags().DurationVar(&after, "after", 24*time.Hour, "how long an instance may go without checking in")
	return c
}

func (a *App) policyCmd() *cobra.Command {
	cmd := group("policy", "Age limits per environment")
	var env string
	set := &cobra.Command{
		Use:   "set-max-age AGE",
		Short: "No instance in --env may run a version built longer ago than AGE (90d, 12w)",
		Args:  exactArgs(1, "the age limit, e.g. 90d"),
		RunE: func(cmd *cobra.Command, args []string) error {
			max, err := kiln.ParseMaxAge("max-age", args[0])
			if err != nil {
				return err
			}
			if err := needEnv(env); err != nil {
				return err
			}
			svc, err := a.fleetServices(cmd.Context())
			if err != nil {
				return err
			}
			if err := svc.Fleet.SetAgePolicy(cmd.Context(), &kiln.AgePolicy{Environment: env, MaxAge: max}); err != nil {
				return err
			}
			cmd.Printf("%s: max age %s\n", env, max)
			return nil
		},
	}
	set.Flags().StringVar(&env, "env", "", "the environment (required)")
	var delEnv string
	del := &cobra.Command{
		Use:   "delete",
		Short: "Remove --env's age limit",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needEnv(delEnv); err != nil {
				return err
			}
			svc, err := a.fleetServices(cmd.Context())
			if err != nil {
				return err
			}
			return svc.Fleet.DeleteAgePolicy(cmd.Context(), delEnv)
		},
	}
	del.Flags().StringVar(&delEnv, "env", "", "the environment (required)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List age limits",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, err := a.fleetServices(cmd.Context())
			if err != nil {
				return err
			}
			ps, err := svc.Fleet.AgePolicies(cmd.Context())
			if err != nil {
				return err
			}
			var rows [][]string
			for _, p := range ps {
				rows = append(rows, []string{p.Environment, p.MaxAge.String(), builtAt(p.UpdatedAt), p.UpdatedBy})
			}
			return a.writeRows(cmd, ps, []string{"ENV", "MAX AGE", "UPDATED", "BY"}, rows)
		},
	}
	cmd.AddCommand(set, del, list)
	return cmd
}

// needEnv refuses a policy command without --env, before anything is
// opened (an empty environment names no policy, here or on a server).
func needEnv(env string) error {
	if env == "" {
		return kiln.FieldErrorf(kiln.EINVALID, "--env", "no environment given; a policy is per environment, e.g. --env prod")
	}
	return nil
}

func (a *App) agentCmd() *cobra.Command {
	cmd := group("agent", "Run on servers made from kiln images")
	var (
		server, token, tokenFile, releaseFile, id, hostname, env, address, artifact string
		labels                                                                      []string
		timeout                                                                     time.Duration
		printUnits, allowHTTP                                                       bool
	)
	c := &cobra.Command{
		Use:   "checkin",
		Short: "Report this server's image version (from /etc/kiln-release, or its --artifact) to kiln serve",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printUnits {
				fmt.Fprintf(cmd.OutOrStdout(), "# /etc/systemd/system/kiln-agent.service\n%s\n# /etc/systemd/system/kiln-agent.timer\n%s", fleet.AgentService, fleet.AgentTimer)
				return nil
			}
			if cmd.Flags().Changed("token") {
				return kiln.FieldErrorf(kiln.EINVALID, "--token", "a token on the command line shows in ps and in shell history; set KILN_TOKEN or pass --token-file FILE (mode 0600)")
			}
			if server == "" {
				return kiln.FieldErrorf(kiln.EINVALID, "--server", "no server given; pass --server http://HOST:PORT or set KILN_SERVER")
			}
			var rel map[string]string
			if artifact == "" || cmd.Flags().Changed("release-file") {
				data, err := os.ReadFile(releaseFile)
				if err != nil {
					return kiln.FieldErrorf(kiln.EINVALID, "--release-file", "cannot read %s: %v; is this server made from a kiln image? (A server made from an image kiln imported, such as a Packer AMI, checks in with --artifact ID.)", releaseFile, err)
				}
				if rel, err = fleet.ParseRelease(releaseFile, data); err != nil {
					return err
				}
			}
			if id == "" {
				mid, err := os.ReadFile("/etc/machine-id")
				if err != nil || strings.TrimSpace(string(mid)) == "" {
					return kiln.FieldErrorf(kiln.EINVALID, "--id", "no --id given and /etc/machine-id cannot be read; pass the instance id")
				}
				id = strings.TrimSpace(string(mid))
			}
			if hostname == "" {
				hostname, _ = os.Hostname()
			}
			c := &kiln.Checkin{InstanceID: id, Hostname: hostname, Environment: env, Address: address, Release: rel, Artifact: artifact}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					return kiln.FieldErrorf(kiln.EINVALID, "--label", "label %q has no '='; write KEY=VALUE", l)
				}
				if c.Labels == nil {
					c.Labels = map[string]string{}
				}
				c.Labels[k] = v
			}
			if err := c.Validate(); err != nil {
				return err
			}
			if tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return kiln.FieldErrorf(kiln.EINVALID, "--token-file", "cannot read the token: %v", err)
				}
				token = strings.TrimSpace(string(b))
			}
			ag := &fleet.Agent{Server: server, Token: token, AllowHTTP: allowHTTP || os.Getenv("KILN_ALLOW_HTTP") == "1"}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel func()
				ctx, cancel = contextWithTimeout(ctx, timeout)
				defer cancel()
			}
			res, err := ag.CheckIn(ctx, c)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), res, func(_ io.Writer) error {
				what := "checked in"
				if res.Created {
					what = "registered"
				}
				cmd.Printf("%s %s as %s running %s\n", what, res.Instance.ID, res.Instance.Name, res.Instance.Version)
				if res.Unknown {
					cmd.Printf("warning: kiln does not know %s; the instance is flagged in reports\n", res.Instance.Version)
				}
				return nil
			})
		},
	}
	f := c.Flags()
	f.StringVar(&server, "server", os.Getenv("KILN_SERVER"), "kiln serve's URL (env KILN_SERVER)")
	token = os.Getenv("KILN_TOKEN")
	f.String("token", "", "refused: a token on the command line shows in ps; use KILN_TOKEN or --token-file")
	_ = f.MarkHidden("token")
	f.StringVar(&tokenFile, "token-file", "", "read the agent token (from `kiln token create --role agent`) from this file; or set KILN_TOKEN")
	f.BoolVar(&allowHTTP, "allow-http", false, "send the token over plain http:// to a server that is not loopback (env KILN_ALLOW_HTTP=1)")
	f.StringVar(&releaseFile, "release-file", fleet.ReleaseFile, "the release file the image's build wrote")
	f.StringVar(&artifact, "artifact", os.Getenv("KILN_ARTIFACT"), "for a server kiln did not build (a Packer AMI, no release file): the artifact id it was made from, as imported, e.g. us-east-1:ami-0abc123 (env KILN_ARTIFACT)")
	f.StringVar(&id, "id", os.Getenv("KILN_INSTANCE_ID"), "this instance's id (default: /etc/machine-id; env KILN_INSTANCE_ID)")
	f.StringVar(&hostname, "hostname", "", "name to register (default: the host name)")
	f.StringVar(&env, "env", os.Getenv("KILN_ENV"), "environment (env KILN_ENV)")
	f.StringVar(&address, "address", "", "this server's address")
	f.StringArrayVar(&labels, "label", nil, "label KEY=VALUE (repeatable)")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	f.BoolVar(&printUnits, "print-systemd-units", false, "print the systemd service and timer that run this every 5 minutes, and exit")
	cmd.AddCommand(c)
	return cmd
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
