package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kiln-project/kiln"
)

// defaultLeaseTime is how long a rollout's lease lasts unrenewed.
const defaultLeaseTime = 30 * time.Second

// processOwner names this process in rollout leases: "kiln serve, pid
// 1234 on host build1, run 3f9a1c". The run id tells apart two processes
// that got the same pid on one host.
var processOwner = sync.OnceValue(func() string {
	prog := filepath.Base(os.Args[0])
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		prog += " " + os.Args[1]
	}
	host, err := os.Hostname()
	if err != nil {
		host = "(unknown)"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s, pid %d on host %s, run %s", prog, os.Getpid(), host, hex.EncodeToString(b[:]))
})

func (e *Engine) owner() string {
	if e.Owner != "" {
		return e.Owner
	}
	return processOwner()
}

func (e *Engine) leaseTime() time.Duration {
	if e.LeaseTime > 0 {
		return e.LeaseTime
	}
	return defaultLeaseTime
}

// acquire makes this process the one running r; ECONFLICT naming the
// holder while another process's lease is valid.
func (e *Engine) acquire(ctx context.Context, r *kiln.Rollout) error {
	return e.Rollouts.AcquireRollout(ctx, r.ID, e.owner(), e.leaseTime())
}

// lease is a rollout's lease held by this process, renewed in the
// background until release. When it is lost (another process took the
// rollout over after it ran out, or it could not be renewed before it
// ran out) the rollout's context is cancelled, so the rollout stops at
// its next step without recording anything more.
type lease struct {
	l       kiln.RolloutLeaser
	id      int64
	service string
	owner   string
	ttl     time.Duration
	cancel  context.CancelCauseFunc
	stop    chan struct{}
	done    chan struct{}

	mu         sync.Mutex
	validUntil time.Time // by this process's clock
	lost       error
}

// hold acquires r's lease and renews it until release. The returned
// context ends when ctx does or the lease is lost.
func (e *Engine) hold(ctx context.Context, r *kiln.Rollout) (context.Context, *lease, error) {
	l := e.Rollouts
	ls := &lease{l: l, id: r.ID, service: r.Service, owner: e.owner(), ttl: e.leaseTime(),
		stop: make(chan struct{}), done: make(chan struct{})}
	t0 := time.Now()
	if err := l.AcquireRollout(ctx, r.ID, ls.owner, ls.ttl); err != nil {
		if ctx.Err() != nil && kiln.ErrorCode(err) != kiln.ECONFLICT {
			// Stopped before it ran: a lease Begin took is not left
			// to run out.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = l.ReleaseRollout(rctx, r.ID, ls.owner)
		}
		return ctx, nil, err
	}
	ls.validUntil = t0.Add(ls.ttl)
	lctx, cancel := context.WithCancelCause(ctx)
	ls.cancel = cancel
	go ls.renew(lctx, e.log())
	return lctx, ls, nil
}

func (ls *lease) renew(ctx context.Context, log *slog.Logger) {
	defer close(ls.done)
	t := time.NewTicker(ls.ttl / 6)
	defer t.Stop()
	for {
		select {
		case <-ls.stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := ls.renewOnce(ctx, log); err != nil {
			return
		}
	}
}

// confirm renews the lease now: a rollout calls it before recording that
// it ends or turns back, so a process that lost the lease records
// nothing. It returns the loss, if the lease is lost.
func (ls *lease) confirm(ctx context.Context) error {
	return ls.renewOnce(ctx, nil)
}

func (ls *lease) renewOnce(ctx context.Context, log *slog.Logger) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.lost != nil {
		return ls.lost
	}
	// Not under ctx: a rollout that just succeeded records it even when
	// its process is told to stop at that moment.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ls.ttl/3)
	defer cancel()
	t0 := time.Now()
	err := ls.l.RenewRollout(rctx, ls.id, ls.owner, ls.ttl)
	switch {
	case err == nil:
		ls.validUntil = t0.Add(ls.ttl)
		return nil
	case kiln.ErrorCode(err) == kiln.ECONFLICT:
		ls.lose(fmt.Errorf("rollout %d of %s stopped here: %w", ls.id, ls.service, err))
	case !time.Now().Before(ls.validUntil.Add(-ls.ttl / 6)):
		ls.lose(kiln.Errorf(kiln.EUNAVAILABLE, "rollout %d of %s stopped here: its lease could not be renewed before it ran out (%v), so another process may resume it now; see `kiln rollout %s --status`",
			ls.id, ls.service, err, ls.service))
	case log != nil:
		log.Warn("could not renew a rollout's lease; trying again", "rollout", ls.id, "service", ls.service, "err", err)
	}
	return ls.lost
}

// lose records the loss and stops the rollout; ls.mu is held.
func (ls *lease) lose(err error) {
	ls.lost = err
	ls.cancel(err)
}

// lostErr returns the loss, nil while the lease is held.
func (ls *lease) lostErr() error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.lost
}

// or returns the loss instead of err when the lease was lost (err is then
// only the cancellation it caused).
func (ls *lease) or(err error) error {
	if lost := ls.lostErr(); lost != nil {
		return lost
	}
	return err
}

// release stops the renewals and ends the lease, so another process may
// resume the rollout at once (a finished one needs it no more).
func (ls *lease) release(ctx context.Context, log *slog.Logger) {
	close(ls.stop)
	<-ls.done
	defer ls.cancel(nil)
	if ls.lostErr() != nil {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := ls.l.ReleaseRollout(rctx, ls.id, ls.owner); err != nil {
		log.Warn("could not release a rollout's lease; another process may resume it once the lease ran out", "rollout", ls.id, "service", ls.service, "err", err)
	}
}
