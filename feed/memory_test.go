package feed_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/feed"
	"github.com/kiln-project/kiln/internal/fixtures"
)

// heapPeak runs fn and returns how far above the heap in use before it
// (after a GC) two figures went, sampled every millisecond from
// runtime/metrics: heap objects (live and not yet collected garbage: what
// the process holds) and the live heap the last GC found (what fn kept
// reachable). fn runs with GOGC=10, so that collections are frequent and
// garbage adds at most about a tenth: the figures follow what fn keeps,
// not the collector's pacing (at the default GOGC=100 a process holds up
// to twice its live heap).
func heapPeak(fn func()) (objects, live uint64) {
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	runtime.GC() // and what sync.Pools kept through the first
	metrics.Read(samples)
	baseObj, baseLive := samples[0].Value.Uint64(), samples[1].Value.Uint64()
	var maxObj, maxLive uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s := []metrics.Sample{{Name: samples[0].Name}, {Name: samples[1].Name}}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			maxObj, maxLive = max(maxObj, s[0].Value.Uint64()), max(maxLive, s[1].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	fn()
	runtime.GC() // the last cycle's live heap is counted too
	close(done)
	wg.Wait()
	return maxObj - min(maxObj, baseObj), maxLive - min(maxLive, baseLive)
}

// trackerCopies makes a tracker export of n copies of the shared fixture's
// packages, each copy's packages and CVE ids renamed, so the export grows
// while every entry stays one Debian really published.
func trackerCopies(tb testing.TB, n int) []byte {
	raw := read(tb, filepath.Join(fixtures.Path(tb, "debian-tracker"), "anchore-vunnel__debian.json"))
	var pkgs map[string]map[string]json.RawMessage
	if err := json.Unmarshal(raw, &pkgs); err != nil {
		tb.Fatal(err)
	}
	names := make([]string, 0, len(pkgs))
	for p := range pkgs {
		names = append(names, p)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		for j, p := range names {
			if i+j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%q: {", fmt.Sprintf("%s-%d", p, i))
			k := 0
			for id, v := range pkgs[p] {
				if k > 0 {
					b.WriteString(",")
				}
				k++
				fmt.Fprintf(&b, "%q: %s", fmt.Sprintf("%s-%d", id, i), v)
			}
			b.WriteString("}")
		}
	}
	b.WriteString("}")
	return []byte(b.String())
}

// osvCopies makes an all.zip of n copies of the shared fixture's OSV
// records, each copy's ids renamed.
func osvCopies(b *testing.B, n int) []byte {
	recs := osvRecords(b)
	out := map[string][]byte{}
	for i := range n {
		for name, r := range recs {
			var m map[string]any
			if err := json.Unmarshal(r, &m); err != nil {
				b.Fatal(err)
			}
			m["id"] = fmt.Sprintf("%s-%d", m["id"], i)
			d, err := json.Marshal(m)
			if err != nil {
				b.Fatal(err)
			}
			out[fmt.Sprintf("%d-%s", i, name)] = d
		}
	}
	return zipOf(b, out)
}

// BenchmarkSyncMemory imports the shared fixtures (the tracker excerpt and
// an all.zip of the OSV records) and larger exports made of copies of
// them into SQLite, and reports the heap the sync added at its peak
// (peak-heap-MB: objects, live and garbage; peak-live-MB: what the GC
// found reachable). A flat import keeps both near constant as the source
// grows. Figures: docs/benchmarks.md, "Advisory import memory (issue 17)".
func BenchmarkSyncMemory(b *testing.B) {
	tracker := filepath.Join(fixtures.Path(b, "debian-tracker"), "anchore-vunnel__debian.json")
	cases := []struct {
		name string
		kind kiln.AdvisorySource
		path string
		body func() []byte
	}{
		{"tracker-fixture", kiln.AdvisoryDebianTracker, "/tracker/data/json", func() []byte { return read(b, tracker) }},
		{"osv-fixture-zip", kiln.AdvisoryOSV, "/Debian/all.zip", func() []byte { return zipOf(b, osvRecords(b)) }},
		{"tracker-x200", kiln.AdvisoryDebianTracker, "/tracker/data/json", func() []byte { return trackerCopies(b, 200) }},
		{"tracker-x800", kiln.AdvisoryDebianTracker, "/tracker/data/json", func() []byte { return trackerCopies(b, 800) }},
		{"tracker-x3200", kiln.AdvisoryDebianTracker, "/tracker/data/json", func() []byte { return trackerCopies(b, 3200) }},
		{"osv-zip-x300", kiln.AdvisoryOSV, "/Debian/all.zip", func() []byte { return osvCopies(b, 300) }},
		{"osv-zip-x1200", kiln.AdvisoryOSV, "/Debian/all.zip", func() []byte { return osvCopies(b, 1200) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			// Served from a file, so the heap before the sync holds no
			// copy of the source (the GC's goal, and so the garbage
			// tolerated, grows with what is live).
			file := filepath.Join(b.TempDir(), "source")
			size := func() int {
				body := c.body()
				if err := os.WriteFile(file, body, 0o644); err != nil {
					b.Fatal(err)
				}
				return len(body)
			}()
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) }))
			defer ts.Close()
			base := ts.URL
			ctx := context.Background()
			var objects, live uint64
			var read int
			for b.Loop() {
				b.StopTimer()
				db := openDB(b)
				src := addSource(b, db, "src", c.kind, base+c.path)
				sy := &feed.Syncer{Store: db, TempDir: b.TempDir()}
				b.StartTimer()
				var err error
				var res *feed.Result
				o, l := heapPeak(func() { res, err = sy.Sync(ctx, src) })
				if err != nil {
					b.Fatal(err)
				}
				objects, live, read = max(objects, o), max(live, l), res.Read
			}
			b.ReportMetric(float64(size)/1e6, "source-MB")
			b.ReportMetric(float64(read), "advisories")
			b.ReportMetric(float64(objects)/1e6, "peak-heap-MB")
			b.ReportMetric(float64(live)/1e6, "peak-live-MB")
		})
	}
}
