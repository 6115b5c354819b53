package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/rollout"
)

// policyFlags are the follow and rollout-policy flags of `kiln service
// create` and `kiln service set`.
type policyFlags struct {
	follow, window, limit, metrics       string
	gateURL, gateQuery                   string
	gateMax                              float64
	gateFor                              time.Duration
	noWindow, noLimit, noGate, noMetrics bool
}

func (p *policyFlags) register(f *pflag.FlagSet, set bool) {
	f.StringVar(&p.follow, "follow", kiln.FollowChannel, "channel: kiln serve rolls the service out when its image's channel in its environment moves; none: only `kiln rollout` does")
	f.StringVar(&p.window, "window", "", `update window kiln serve's rollouts start in: "DAYS HH:MM-HH:MM ZONE", e.g. "mon-fri 02:00-05:00 Europe/Berlin"`)
	f.StringVar(&p.limit, "limit", "", "at most N rollouts per period in the service's environment before kiln serve starts another: N/DURATION, e.g. 2/24h")
	f.StringVar(&p.metrics, "metrics-port", "", "loopback address (or port) where the front end serves /metrics for Prometheus, e.g. 127.0.0.1:19080")
	f.StringVar(&p.gateURL, "gate-prometheus", "", "metric gate: the Prometheus server's URL, e.g. http://127.0.0.1:9090")
	f.StringVar(&p.gateQuery, "gate-query", "", "metric gate: PromQL query evaluated after each batch; above --gate-max rolls back")
	f.Float64Var(&p.gateMax, "gate-max", 0, "metric gate: the largest value the query may give")
	f.DurationVar(&p.gateFor, "gate-for", 0, "metric gate: how long after each batch the query must stay at or under --gate-max (0: one evaluation)")
	if set {
		f.BoolVar(&p.noWindow, "no-window", false, "remove the update window")
		f.BoolVar(&p.noLimit, "no-limit", false, "remove the rollout limit")
		f.BoolVar(&p.noGate, "no-gate", false, "remove the metric gate")
		f.BoolVar(&p.noMetrics, "no-metrics-port", false, "serve /metrics nowhere")
	}
}

// apply sets on s what the flags given (changed) say.
func (p *policyFlags) apply(f *pflag.FlagSet, s *kiln.Service) error {
	changed := f.Changed
	var err error
	if changed("follow") || s.Follow == "" {
		s.Follow = p.follow
	}
	if changed("window") {
		if s.Policy.Window, err = kiln.ParseUpdateWindow("--window", p.window); err != nil {
			return err
		}
	}
	if p.noWindow {
		s.Policy.Window = nil
	}
	if changed("limit") {
		if s.Policy.Limit, err = kiln.ParseRolloutLimit("--limit", p.limit); err != nil {
			return err
		}
	}
	if p.noLimit {
		s.Policy.Limit = nil
	}
	if changed("metrics-port") {
		if s.MetricsListen, err = kiln.ParseListen("--metrics-port", p.metrics); err != nil {
			return err
		}
	}
	if p.noMetrics {
		s.MetricsListen = ""
	}
	if changed("gate-prometheus") || changed("gate-query") || changed("gate-max") || changed("gate-for") {
		g := kiln.MetricGate{}
		if s.Policy.Gate != nil {
			g = *s.Policy.Gate
		}
		if changed("gate-prometheus") {
			g.Prometheus = p.gateURL
		}
		if changed("gate-query") {
			g.Query = p.gateQuery
		}
		if changed("gate-max") {
			g.Max = p.gateMax
		}
		if changed("gate-for") {
			g.For = p.gateFor
		}
		if err := g.Validate(); err != nil {
			return kiln.FieldErrorf(kiln.EINVALID, "--"+fieldFlag(err), "%s", kiln.ErrorMessage(err))
		}
		s.Policy.Gate = &g
	}
	if p.noGate {
		s.Policy.Gate = nil
	}
	return nil
}

func fieldFlag(err error) string {
	var ke *kiln.Error
	if errors.As(err, &ke) && strings.HasPrefix(ke.Field, "gate.") {
		return "gate-" + strings.TrimPrefix(ke.Field, "gate.")
	}
	return "gate-query"
}

// printPolicy writes a service's follow state and policy (show).
func printPolicy(w io.Writer, s *kiln.Service, st *rollout.FollowStatus) {
	follow := "follow: none (`kiln rollout " + s.Name + "` rolls it out, or the autopilot's refresh for an advisory)"
	if s.Following() {
		follow = fmt.Sprintf("follow: the %s channel of %s", s.Environment, s.Image)
	}
	if s.Estate != "" {
		follow += fmt.Sprintf("; defined by estate %s", s.Estate)
	}
	fmt.Fprintln(w, follow)
	if st != nil && st.State != rollout.FollowNotFollowing {
		fmt.Fprintf(w, "  %s: %s\n", st.State, st.Detail)
	}
	if w0 := s.Policy.Window; w0 != nil {
		line := "window: " + w0.String()
		if st != nil && !st.NextWindow.IsZero() {
			loc, _ := time.LoadLocation(w0.Zone)
			if st.NextWindow.Equal(st.At) {
				line += " (open now)"
			} else {
				line += fmt.Sprintf(" (next opens %s)", st.NextWindow.In(loc).Format("Mon 2006-01-02 15:04 MST"))
			}
		}
		fmt.Fprintln(w, line)
	} else {
		fmt.Fprintln(w, "window: any time")
	}
	if l := s.Policy.Limit; l != nil {
		fmt.Fprintf(w, "limit: %d rollouts per %s in %s\n", l.Count, kiln.ShortDuration(l.Per), s.Environment)
	}
	if g := s.Policy.Gate; g != nil {
		fmt.Fprintf(w, "gate: %s\n", g)
	}
	if s.MetricsListen != "" {
		fmt.Fprintf(w, "metrics: http://%s/metrics\n", s.MetricsListen)
	}
}

// ApplyEstateServices records the service blocks of est, registered as
// estate: a service it names that does not exist is created (its front
// end starts with its first rollout, or `kiln service start`); one that
// exists gets the block's rollout settings and policy. A service of
// another estate, or one whose image, environment, replicas, front end or
// health differ from the block, is refused with what to do. It returns a
// line per service.
func ApplyEstateServices(ctx context.Context, ss kiln.ServiceStore, estate string, est *definition.Estate) ([]string, error) {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(est.Services)) {
		d := est.Services[name]
		want := d.Service
		want.Estate = estate
		where := fmt.Sprintf("%s (%s:%d)", name, d.File, d.Range.Start.Line)
		cur, err := ss.FindService(ctx, name)
		if kiln.ErrorCode(err) == kiln.ENOTFOUND {
			if err := ss.CreateService(ctx, &want); err != nil {
				return out, fmt.Errorf("service %s: %w", where, err)
			}
			out = append(out, fmt.Sprintf("service %s created (%d × %s in %s, front end %s, follow %s)", name, want.Replicas, want.Image, want.Environment, want.Listen, want.Follow))
			continue
		}
		if err != nil {
			return out, err
		}
		if cur.Estate != "" && cur.Estate != estate {
			return out, kiln.Errorf(kiln.ECONFLICT, "service %s is defined by estate %s; remove it from one of the two estates", where, cur.Estate)
		}
		if cur.Image != want.Image || cur.Environment != want.Environment || cur.Replicas != want.Replicas || cur.Listen != want.Listen ||
			cur.Port != want.Port || cur.Health != want.Health {
			return out, kiln.Errorf(kiln.ECONFLICT, "service %s exists with another image, environment, replicas, front end or health check than its block declares; "+
				"these do not change in place: delete it (`kiln service delete %s --destroy-instances`) and apply the estate again, or change the block back", where, name)
		}
		cur.MaxSurge, cur.BatchSize, cur.MinHealthyPercent, cur.BakeTime, cur.MaxErrorRate = want.MaxSurge, want.BatchSize, want.MinHealthyPercent, want.BakeTime, want.MaxErrorRate
		cur.MetricsListen, cur.Follow, cur.Policy, cur.Estate = want.MetricsListen, want.Follow, want.Policy, estate
		if err := ss.UpdateService(ctx, cur); err != nil {
			return out, fmt.Errorf("service %s: %w", where, err)
		}
		out = append(out, fmt.Sprintf("service %s updated (follow %s)", name, cur.Follow))
	}
	return out, nil
}
