package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/fleet"
)

// Checkins is the check-in throughput over HTTP on each backend: the real
// API (bearer token, agent role) on loopback, through the batcher kiln
// serve uses. Target: 20,000 per second on both.
func Checkins() Measure {
	return Measure{
		ID: "checkin", Title: "check-ins over HTTP, both backends", Quick: true,
		Run: func(ctx context.Context, env *Env) ([]Figure, error) {
			n := 50_000
			if env.Quick {
				n = 20_000
			}
			var figs []Figure
			for _, kind := range env.backends() {
				res, perTx, err := CheckinsOn(ctx, env, kind, n)
				if err != nil {
					return figs, fmt.Errorf("%s: %w", kind, err)
				}
				figs = append(figs, Figure{ID: "checkin." + kind, Title: "check-ins on " + kind, Value: res.PerSecond(), Unit: "/s"}.
					AtLeast(20_000).
					Noted("%d check-ins, 256 connections, %.0f per transaction, %.0f µs CPU each", n, perTx, float64(res.CPU.Microseconds())/float64(n)))
			}
			return figs, nil
		},
	}
}

// CheckinsOn posts n check-ins through a CheckinLoad to the API served on
// loopback over an empty store of kind ("sqlite" or "postgres", which
// needs env.Postgres), and returns what the load saw and the check-ins
// per store transaction.
func CheckinsOn(ctx context.Context, env *Env, kind string, n int) (LoadResult, float64, error) {
	db, closeDB, err := env.openStore(ctx, kind, time.Now)
	if err != nil {
		return LoadResult{}, 0, err
	}
	defer closeDB()
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		return LoadResult{}, 0, err
	}
	if _, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver"}); err != nil {
		return LoadResult{}, 0, err
	}
	_, secret, err := db.CreateToken(ctx, &kiln.NewToken{Name: "agents", Role: kiln.RoleAgent})
	if err != nil {
		return LoadResult{}, 0, err
	}
	counted := &countingFleet{Fleet: db}
	batcher := fleet.NewBatcher(counted, 256)
	defer batcher.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return LoadResult{}, 0, err
	}
	srv := &http.Server{Handler: api.New(api.Config{CheckinRate: -1, Checkins: batcher}.WithStores(db)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()
	load := CheckinLoad{Addr: ln.Addr().String(), Path: fleet.CheckinPath, Token: secret, N: n, Clients: 256, Pool: 10_000}
	res, err := load.Run(ctx)
	if err != nil {
		return res, 0, err
	}
	txs := counted.txs.Load()
	if txs == 0 {
		return res, 0, errors.New("no check-in reached the store")
	}
	return res, float64(n) / float64(txs), nil
}

// countingFleet counts the check-in transactions (batches) it passes on.
type countingFleet struct {
	kiln.Fleet
	txs atomic.Int64
}

// CheckinWriters passes on the store's concurrency to the batcher.
func (c *countingFleet) CheckinWriters() int {
	if cc, ok := c.Fleet.(fleet.ConcurrentCheckins); ok {
		return cc.CheckinWriters()
	}
	return 1
}

func (c *countingFleet) CheckIn(ctx context.Context, cs []*kiln.Checkin) ([]*kiln.CheckinResult, error) {
	c.txs.Add(1)
	return c.Fleet.CheckIn(ctx, cs)
}
