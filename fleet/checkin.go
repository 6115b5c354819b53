package fleet

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/kiln-project/kiln"
)

// Batcher records check-ins in shared transactions: while one transaction
// commits, the check-ins arriving meanwhile queue and go into the next one
// (group commit). Each caller still waits until its own check-in is
// committed, so a reply means it is recorded: durable on SQLite; on
// PostgreSQL the store commits check-ins with synchronous_commit off, so
// a crash of the database server (not of kiln) may lose the last fraction
// of a second of them, which the agents send again at their next check-in
// (docs/fleet.md). A batch that fails is retried
// one check-in at a time, so one bad check-in fails only its caller.
type Batcher struct {
	fleet kiln.Fleet
	max   int
	reqs  chan *pending
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	// mu orders sends before Close: CheckIn queues under the read lock,
	// Close marks the batcher closed under the write lock, so nothing is
	// queued after the writers' final drain.
	mu     sync.RWMutex
	closed bool
}

// ConcurrentCheckins is implemented by stores on which several check-in
// transactions make progress at once (PostgreSQL); CheckinWriters says how
// many the batcher should keep going. Without it the batcher writes one
// transaction at a time, which is all a SQLite file allows anyway.
type ConcurrentCheckins interface {
	CheckinWriters() int
}

type pending struct {
	ctx  context.Context
	c    *kiln.Checkin
	res  *kiln.CheckinResult
	err  error
	done chan struct{}
}

// batchLinger is how long a writer waits for more check-ins before it
// writes a batch that is not full: at most 2 ms more per answer.
const batchLinger = 2 * time.Millisecond

// ErrBatcherClosed is returned for check-ins sent after Close.
var ErrBatcherClosed = kiln.Errorf(kiln.EUNAVAILABLE, "the server is shutting down; check in again later")

// NewBatcher starts a batcher writing up to maxBatch check-ins per
// transaction, in as many transactions at once as fl says it can take
// (ConcurrentCheckins; one otherwise). Close stops it.
func NewBatcher(fl kiln.Fleet, maxBatch int) *Batcher {
	if maxBatch < 1 {
		maxBatch = 1
	}
	writers := 1
	if cc, ok := fl.(ConcurrentCheckins); ok {
		writers = max(1, cc.CheckinWriters())
	}
	b := &Batcher{fleet: fl, max: maxBatch, reqs: make(chan *pending, 4*maxBatch),
		stop: make(chan struct{}), done: make(chan struct{})}
	var wg sync.WaitGroup
	for range writers {
		wg.Go(b.loop)
	}
	go func() {
		wg.Wait()
		close(b.done)
	}()
	return b
}

// CheckIn validates c, queues it and waits until it is committed.
func (b *Batcher) CheckIn(ctx context.Context, c *kiln.Checkin) (*kiln.CheckinResult, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	p := &pending{ctx: ctx, c: c, done: make(chan struct{})}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return nil, ErrBatcherClosed
	}
	select {
	case b.reqs <- p:
	case <-ctx.Done():
		b.mu.RUnlock()
		return nil, ctx.Err()
	}
	b.mu.RUnlock()
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		// It may still be committed; the agent's next check-in is idempotent.
		return nil, ctx.Err()
	}
}

// Close stops taking check-ins, finishes the queued ones and returns.
func (b *Batcher) Close() {
	b.once.Do(func() {
		b.mu.Lock()
		b.closed = true
		close(b.stop)
		b.mu.Unlock()
	})
	<-b.done
}

func (b *Batcher) loop() {
	for {
		var first *pending
		select {
		case first = <-b.reqs:
		case <-b.stop:
			// Drain what was queued before the stop.
			for {
				select {
				case p := <-b.reqs:
					b.write([]*pending{p})
				default:
					return
				}
			}
		}
		batch := []*pending{first}
	fill:
		for len(batch) < b.max {
			select {
			case p := <-b.reqs:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		if len(batch) < b.max {
			// Wait a little for more: on a busy server, each transaction
			// then carries more check-ins and costs less CPU per check-in.
			t := time.NewTimer(batchLinger)
		linger:
			for len(batch) < b.max {
				select {
				case p := <-b.reqs:
					batch = append(batch, p)
				case <-t.C:
					break linger
				case <-b.stop:
					break linger
				}
			}
			t.Stop()
		}
		b.write(batch)
	}
}

func (b *Batcher) write(batch []*pending) {
	live := batch[:0]
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.err = err
			close(p.done)
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	cs := make([]*kiln.Checkin, len(live))
	for i, p := range live {
		cs[i] = p.c
	}
	// The batch runs on its own context: one caller giving up must not
	// roll back the others' check-ins.
	ctx := context.WithoutCancel(live[0].ctx)
	res, err := b.fleet.CheckIn(ctx, cs)
	if err == nil {
		for i, p := range live {
			// A refused check-in fails its own caller only.
			if p.err = res[i].Refused; p.err == nil {
				p.res = res[i]
			}
			close(p.done)
		}
		return
	}
	if len(live) == 1 || errors.Is(err, context.Canceled) {
		for _, p := range live {
			p.err = err
			close(p.done)
		}
		return
	}
	for _, p := range live {
		r, err := b.fleet.CheckIn(ctx, []*kiln.Checkin{p.c})
		if err == nil {
			err = r[0].Refused
		}
		if err == nil {
			p.res = r[0]
		}
		p.err = err
		close(p.done)
	}
}
