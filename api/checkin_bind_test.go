package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/fleet"
	"github.com/kiln-project/kiln/store"
)

// Through the batcher kiln serve uses: agent-b's check-ins of agent-a's
// instances are refused 403 with a clear message, to agent-b alone, while
// agent-a's concurrent check-ins in the same batches are recorded.
func TestCheckinBoundToFirstToken(t *testing.T) {
	var b *fleet.Batcher
	var db *store.DB
	_, ts, toks := checkinServer(t, Config{CheckinRate: -1}, func(d *store.DB, cfg *Config) {
		db, b = d, fleet.NewBatcher(d, 64)
		cfg.Checkins = b
	})
	t.Cleanup(b.Close)
	post := func(tok, id, env string) (int, string) {
		body := fmt.Sprintf(`{"instance_id":%q,"environment":%q,"release":{"image":"appserver","version":"1"}}`, id, env)
		req, _ := http.NewRequest("POST", ts.URL+fleet.CheckinPath, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	for i := range 20 {
		if code, body := post(toks["agent-a"], fmt.Sprintf("i-%d", i), "prod"); code != 200 {
			t.Fatalf("agent-a registers i-%d: %d %s", i, code, body)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				id := fmt.Sprintf("i-%d", i)
				if w%2 == 0 {
					if code, body := post(toks["agent-a"], id, "prod"); code != 200 {
						errs <- fmt.Sprintf("agent-a %s: %d %s", id, code, body)
					}
					continue
				}
				code, body := post(toks["agent-b"], id, "evil")
				if code != 403 || !strings.Contains(body, "bound to the agent token that first checked it in") || !strings.Contains(body, `"code":"forbidden"`) {
					errs <- fmt.Sprintf("agent-b %s: %d %s, want 403", id, code, body)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	insts, _, err := db.ListInstances(context.Background(), kiln.InstanceFilter{Environment: "evil"})
	if err != nil || len(insts) != 0 {
		t.Fatalf("agent-b rewrote %d instances (%v)", len(insts), err)
	}
	if code, body := post(toks["agent-b"], "i-b", "dev"); code != 200 {
		t.Fatalf("agent-b registers its own: %d %s", code, body)
	}
}
