package cli

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
)

// serverHost is a kiln server's rollout host as the client sees it: each
// poll answers the next of answers (the last one again when they run out),
// and onPoll runs before it.
type serverHost struct {
	mu      sync.Mutex
	answers []answer
	polls   int
	onPoll  func(n int)
}

type answer struct {
	p   *kiln.RolloutProgress
	err error
}

func (h *serverHost) StartRollout(_ context.Context, req kiln.RolloutRequest) (*kiln.Rollout, error) {
	return &kiln.Rollout{ID: 7, Service: req.Service, State: kiln.RolloutRunning}, nil
}

func (h *serverHost) RolloutProgress(context.Context, int64, int) (*kiln.RolloutProgress, error) {
	h.mu.Lock()
	n := h.polls
	h.polls++
	a := h.answers[min(n, len(h.answers)-1)]
	f := h.onPoll
	h.mu.Unlock()
	if f != nil {
		f(n)
	}
	return a.p, a.err
}

func (h *serverHost) StartFrontEnd(context.Context, string) error                   { return nil }
func (h *serverHost) StopFrontEnd(context.Context, string) error                    { return nil }
func (h *serverHost) FrontEndRunning(context.Context, string) (bool, error)         { return false, nil }
func (h *serverHost) RemoveService(context.Context, string, bool) ([]string, error) { return nil, nil }

func running(batch int, lines ...string) answer {
	return answer{p: &kiln.RolloutProgress{Rollout: &kiln.Rollout{ID: 7, Service: "web", State: kiln.RolloutRunning, Batch: batch},
		Lines: lines, Next: len(lines), Running: true}}
}

func follow(t *testing.T, ctx context.Context, h *serverHost) (*kiln.Rollout, string, error) {
	t.Helper()
	var errb bytes.Buffer
	cmd := &cobra.Command{}
	cmd.SetErr(&errb)
	r, err := (&App{}).roll(ctx, cmd, h, kiln.RolloutRequest{Service: "web"})
	return r, errb.String(), err
}

// Ctrl-C while following a rollout on the server stops the follow only: a
// user-level error (exit 1) names the rollout and says where to see it.
func TestRollFollowInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h := &serverHost{answers: []answer{running(0, "--> batch 1")}, onPoll: func(n int) {
		if n == 1 {
			cancel()
		}
	}}
	_, _, err := follow(t, ctx, h)
	if ExitCode(err) != ExitUser || !strings.Contains(err.Error(), "rollout 7 of web") ||
		!strings.Contains(err.Error(), "keeps running on the server") || !strings.Contains(err.Error(), "kiln service show web") {
		t.Fatalf("Ctrl-C: %v (exit %d); want exit 1 naming rollout 7, saying it keeps running and how to see it", err, ExitCode(err))
	}
}

// A server that stops answering for a while (a restart) does not end the
// follow: it is asked again, and once it answers, a rollout it does not run
// and that has not ended is reported interrupted, to be resumed (exit 1).
func TestRollFollowSurvivesServerRestart(t *testing.T) {
	down := answer{err: kiln.Errorf(kiln.EUNAVAILABLE, "connection refused")}
	back := answer{p: &kiln.RolloutProgress{Rollout: &kiln.Rollout{ID: 7, Service: "web", State: kiln.RolloutRunning, Batch: 1}, Lines: []string{}, Next: 1}}
	h := &serverHost{answers: []answer{running(1, "batch 1 done"), down, down, back}}
	r, errs, err := follow(t, context.Background(), h)
	if ExitCode(err) != ExitUser || !strings.Contains(err.Error(), "rollout 7 of web was interrupted on the server") || !strings.Contains(err.Error(), "kiln rollout web --resume") {
		t.Fatalf("after the restart: %v (exit %d)\n%s", err, ExitCode(err), errs)
	}
	if r.Batch != 1 || h.polls != 4 || !strings.Contains(errs, "batch 1 done") || !strings.Contains(errs, "retrying") || !strings.Contains(errs, "answers again") {
		t.Fatalf("rollout %+v after %d polls; stderr:\n%s", r, h.polls, errs)
	}

	// The rollout ended while the server was away: it is reported as it ended.
	done := answer{p: &kiln.RolloutProgress{Rollout: &kiln.Rollout{ID: 7, Service: "web", State: kiln.RolloutSucceeded}, Lines: []string{}}}
	h = &serverHost{answers: []answer{down, done}}
	if r, errs, err := follow(t, context.Background(), h); err != nil || r.State != kiln.RolloutSucceeded {
		t.Fatalf("ended while away: %+v %v\n%s", r, err, errs)
	}
}

// A server that does not come back within followRetry ends the follow
// with a user-level error that says how to go on.
func TestRollFollowGivesUp(t *testing.T) {
	defer func(d time.Duration) { followRetry = d }(followRetry)
	followRetry = 1200 * time.Millisecond
	h := &serverHost{answers: []answer{{err: kiln.Errorf(kiln.EUNAVAILABLE, "connection refused")}}}
	_, _, err := follow(t, context.Background(), h)
	if ExitCode(err) != ExitUser || !strings.Contains(err.Error(), "lost the kiln server") || !strings.Contains(err.Error(), "kiln rollout web --resume") || h.polls < 2 {
		t.Fatalf("server gone: %v (exit %d) after %d polls", err, ExitCode(err), h.polls)
	}
	// Other errors are not retried.
	h = &serverHost{answers: []answer{{err: kiln.Errorf(kiln.ENOTFOUND, "rollout 7 not found")}}}
	if _, _, err := follow(t, context.Background(), h); kiln.ErrorCode(err) != kiln.ENOTFOUND || h.polls != 1 {
		t.Fatalf("not found: %v after %d polls", err, h.polls)
	}
}
