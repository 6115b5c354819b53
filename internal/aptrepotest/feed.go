package aptrepotest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Feed is an OSV feed on loopback: one record at URL, served with an
// ETag so conditional requests answer 304 until Set changes it.
type Feed struct {
	URL string

	mu     sync.Mutex
	record []byte
	etag   string
	gets   int
}

// NewFeed serves record (an OSV JSON document) until the test ends.
func NewFeed(t testing.TB, record []byte) *Feed {
	t.Helper()
	f := &Feed{}
	f.Set(record)
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL + "/osv/record.json"
	return f
}

// Set replaces the record the feed serves.
func (f *Feed) Set(record []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record = record
	f.etag = fmt.Sprintf(`"%d-%d"`, len(record), time.Now().UnixNano())
}

// Gets counts the requests that got the record (not 304s).
func (f *Feed) Gets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets
}

func (f *Feed) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path != "/osv/record.json" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", f.etag)
	if r.Header.Get("If-None-Match") == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	f.gets++
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(f.record)
}

// FixedRecord is an OSV record for Debian 12 saying source package pkg is
// affected before fixed, with Debian's urgency severity (e.g. "high").
func FixedRecord(id, pkg, fixed, severity string) []byte {
	rec := map[string]any{
		"schema_version": "1.6.0",
		"id":             id,
		"modified":       "2026-12-01T00:00:00Z",
		"published":      "2026-12-01T00:00:00Z",
		"summary":        pkg + " fixed in " + fixed,
		"details":        "Test advisory for kiln's patching tests.",
		"affected": []any{map[string]any{
			"package":            map[string]any{"ecosystem": "Debian:12", "name": pkg},
			"ranges":             []any{map[string]any{"type": "ECOSYSTEM", "events": []any{map[string]any{"introduced": "0"}, map[string]any{"fixed": fixed}}}},
			"ecosystem_specific": map[string]any{"urgency": severity},
		}},
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		panic(err) // a map of strings always marshals
	}
	return b
}
