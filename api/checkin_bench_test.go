package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/fleet"
	"github.com/kiln-project/kiln/store"
)

// acceptCheckins answers every valid check-in without recording it, so
// BenchmarkCheckinHandler measures the HTTP side alone.
type acceptCheckins struct{}

func (acceptCheckins) CheckIn(_ context.Context, c *kiln.Checkin) (*kiln.CheckinResult, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &kiln.CheckinResult{Instance: &kiln.Instance{ID: c.InstanceID}}, nil
}

// BenchmarkCheckinHandler serves check-ins in process (no network, no
// database) through the handler: body limit, token, decoding, validation.
// It is the server's CPU per check-in outside the store:
//
//	go test ./api -run '^$' -bench CheckinHandler -benchmem
func BenchmarkCheckinHandler(b *testing.B) {
	s, _, toks := checkinServer(b, Config{CheckinRate: -1}, func(_ *store.DB, cfg *Config) {
		cfg.Checkins = acceptCheckins{}
	})
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1) % 1000
			body := fmt.Sprintf(`{"instance_id":"i-%04d","hostname":"web-%d","environment":"prod","address":"10.0.%d.%d","labels":{"team":"web","az":"a"},"release":{"image":"appserver","version":"1","name":"appserver-1","build_time":"2026-11-29T00:00:00Z"}}`, i, i, i/250, i%250)
			req := httptest.NewRequest(http.MethodPost, fleet.CheckinPath, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+toks["agent-a"])
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("check-in: %d %s", w.Code, w.Body)
			}
		}
	})
}
