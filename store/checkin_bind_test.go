package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

// An instance is bound to the agent token that first checked it in:
// another token cannot rewrite it; kiln-launched instances refuse agent
// check-ins; a refused check-in fails alone, and the others of its batch
// are recorded.
func TestCheckinBinding(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "appserver")
		must[*kiln.Version](t)(e.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver"}))
		must[*kiln.Version](t)(e.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver"}))
		as := func(agent string, c *kiln.Checkin) *kiln.Checkin { c.Agent = agent; return c }
		// Kiln launched i-kiln (launch.Launcher records it so).
		if err := e.CreateInstance(ctx, &kiln.Instance{ID: "i-kiln", Version: kiln.VersionRef{Image: "appserver", Number: 1},
			Environment: "prod", Platform: "local", LaunchedByKiln: true}); err != nil {
			t.Fatal(err)
		}
		// Registered by hand: bound to the first agent that checks it in.
		if err := e.CreateInstance(ctx, &kiln.Instance{ID: "i-hand", Version: kiln.VersionRef{Image: "appserver", Number: 1}, Environment: "prod"}); err != nil {
			t.Fatal(err)
		}
		if inst := must[*kiln.Instance](t)(e.FindInstance(ctx, "i-kiln")); !inst.LaunchedByKiln {
			t.Fatalf("i-kiln: %+v", inst)
		}
		res := must[[]*kiln.CheckinResult](t)(e.CheckIn(ctx, []*kiln.Checkin{
			as("token:a", checkin("i-1", "web-1", "prod", "appserver", 1)),
			as("token:a", checkin("i-hand", "", "", "appserver", 1)),
		}))
		for _, r := range res {
			if r.Refused != nil {
				t.Fatalf("first check-ins refused: %v", r.Refused)
			}
		}
		// One batch: token b tries to rewrite i-1 (token a's) and i-hand
		// (now token a's), and to check in the kiln-launched i-kiln; its
		// own i-2 and token a's i-1 check-ins are kept.
		res = must[[]*kiln.CheckinResult](t)(e.CheckIn(ctx, []*kiln.Checkin{
			as("token:b", checkin("i-1", "", "dev", "appserver", 2)),
			as("token:b", checkin("i-2", "web-2", "prod", "appserver", 1)),
			as("token:b", checkin("i-hand", "", "dev", "appserver", 2)),
			as("token:a", checkin("i-kiln", "", "dev", "appserver", 2)),
			as("token:a", checkin("i-1", "", "staging", "appserver", 2)),
			checkin("i-kiln", "", "dev", "appserver", 2), // no agent token: still refused
		}))
		for i, want := range []string{"another", "", "another", "launched by kiln", "", "launched by kiln"} {
			r := res[i]
			switch {
			case want == "" && (r.Refused != nil || r.Instance == nil):
				t.Errorf("check-in %d refused: %v", i, r.Refused)
			case want != "" && (r.Refused == nil || r.Instance != nil):
				t.Errorf("check-in %d: %+v, want refused (%s)", i, r, want)
			case want != "" && (kiln.ErrorCode(r.Refused) != kiln.EFORBIDDEN || !strings.Contains(kiln.ErrorMessage(r.Refused), want)):
				t.Errorf("check-in %d: %v, want forbidden saying %q", i, r.Refused, want)
			}
		}
		for id, want := range map[string]string{"i-1": "staging appserver-2", "i-2": "prod appserver-1", "i-hand": "prod appserver-1", "i-kiln": "prod appserver-1"} {
			inst := must[*kiln.Instance](t)(e.FindInstance(ctx, id))
			if got := inst.Environment + " " + inst.Version.String(); got != want {
				t.Errorf("%s: %s, want %s", id, got, want)
			}
		}
		// A check-in refused alone is refused (not an error of the call).
		res = must[[]*kiln.CheckinResult](t)(e.CheckIn(ctx, []*kiln.Checkin{as("token:b", checkin("i-1", "", "dev", "appserver", 1))}))
		if res[0].Refused == nil {
			t.Fatalf("lone check-in by another token: %+v", res[0])
		}
	})
}

// A kiln-launched instance given an agent token at launch is bound to it:
// that token's check-ins say it is alive (last seen moves; what kiln
// recorded stays), another token's are refused, and a check-in reporting
// another version than kiln launched is refused as a conflict.
func TestCheckinLaunchedWithAgentToken(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "appserver")
		must[*kiln.Version](t)(e.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver"}))
		must[*kiln.Version](t)(e.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver"}))
		tok, secret, err := e.CreateToken(ctx, &kiln.NewToken{Name: "agent-prod", Role: kiln.RoleAgent})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.CreateToken(ctx, &kiln.NewToken{Name: "agent-dev", Role: kiln.RoleAgent}); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(secret))
		if err := e.CreateInstance(ctx, &kiln.Instance{ID: "i-kiln", Version: kiln.VersionRef{Image: "appserver", Number: 1},
			Environment: "prod", Platform: "local", LaunchedByKiln: true, Address: "127.0.0.1:1234",
			Labels: map[string]string{"kiln.service": "web"}, AgentTokenSHA256: hex.EncodeToString(sum[:])}); err != nil {
			t.Fatal(err)
		}
		before := must[*kiln.Instance](t)(e.FindInstance(ctx, "i-kiln"))
		as := func(agent string, c *kiln.Checkin) *kiln.Checkin { c.Agent = agent; return c }
		c := as("token:"+tok.Name, checkin("i-kiln", "somehost", "dev", "appserver", 1))
		c.Address, c.Labels = "10.0.0.9", map[string]string{"x": "y"}
		res := must[[]*kiln.CheckinResult](t)(e.CheckIn(ctx, []*kiln.Checkin{
			c,
			as("token:agent-dev", checkin("i-kiln", "", "prod", "appserver", 1)),
			checkin("i-kiln", "", "prod", "appserver", 1),
			as("token:"+tok.Name, checkin("i-kiln", "", "prod", "appserver", 2)),
		}))
		if res[0].Refused != nil {
			t.Fatalf("the launch's own token refused: %v", res[0].Refused)
		}
		for i, want := range map[int]string{1: kiln.EFORBIDDEN, 2: kiln.EFORBIDDEN, 3: kiln.ECONFLICT} {
			if kiln.ErrorCode(res[i].Refused) != want {
				t.Errorf("check-in %d: %+v (%v), want refused %s", i, res[i], res[i].Refused, want)
			}
		}
		after := must[*kiln.Instance](t)(e.FindInstance(ctx, "i-kiln"))
		if after.Environment != "prod" || after.Address != "127.0.0.1:1234" || after.Labels["kiln.service"] != "web" || len(after.Labels) != 1 ||
			after.Version != before.Version || after.Platform != "local" || !after.LaunchedByKiln {
			t.Errorf("kiln's record changed by a check-in: %+v", after)
		}
		if after.LastSeenAt.Before(before.LastSeenAt) {
			t.Errorf("last seen went back: %s → %s", before.LastSeenAt, after.LastSeenAt)
		}
	})
}
