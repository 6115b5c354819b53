package feed_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/feed"
	"github.com/kiln-project/kiln/internal/fixtures"
	"github.com/kiln-project/kiln/store"
)

func openDB(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), "", t.TempDir(), slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// files serves byte contents by path with an ETag, answering conditional
// requests as a real server does; contents can change between requests.
type files struct {
	mu       sync.Mutex
	content  map[string][]byte
	requests map[string]int
}

func (f *files) set(p string, b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.content[p] = b
}

func (f *files) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	b, ok := f.content[r.URL.Path]
	f.requests[r.URL.Path]++
	f.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", fmt.Sprintf(`"%x"`, sha256.Sum256(b)))
	http.ServeContent(w, r, filepath.Base(r.URL.Path), time.Time{}, bytes.NewReader(b))
}

func serve(t testing.TB) (*files, string) {
	f := &files{content: map[string][]byte{}, requests: map[string]int{}}
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	return f, ts.URL
}

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// osvRecords are the shared fixture's well-formed OSV records.
func osvRecords(t testing.TB) map[string][]byte {
	dir := fixtures.Path(t, "osv")
	paths, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(paths) == 0 {
		t.Fatalf("no OSV records in %s", dir)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		out[filepath.Base(p)] = read(t, p)
	}
	return out
}

func zipOf(t testing.TB, recs map[string][]byte) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, b := range recs {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func addSource(t testing.TB, db *store.DB, name string, kind kiln.AdvisorySource, url string) *kiln.AdvisoryFeed {
	t.Helper()
	if err := db.CreateAdvisoryFeed(context.Background(), &kiln.AdvisoryFeed{Name: name, Kind: kind, URL: url, Every: time.Hour}); err != nil {
		t.Fatal(err)
	}
	return find(t, db, name)
}

func find(t testing.TB, db *store.DB, name string) *kiln.AdvisoryFeed {
	t.Helper()
	f, err := db.FindAdvisoryFeed(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func ids(t testing.TB, db *store.DB) []string {
	t.Helper()
	as, _, err := db.ListAdvisories(context.Background(), kiln.AdvisoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

// The OSV ecosystem archive: the first sync imports every record, the
// second gets 304 and changes nothing, a malformed archive keeps the
// advisories and says why, and a fixed archive imports again.
func TestSyncOSVArchive(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	srv, base := serve(t)
	recs := osvRecords(t)
	srv.set("/Debian/all.zip", zipOf(t, recs))
	sy := &feed.Syncer{Store: db}
	src := addSource(t, db, "osv-debian", kiln.AdvisoryOSV, base+"/Debian/all.zip")

	res, err := sy.Sync(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if res.NotModified || res.Read != len(recs) || res.Created != len(recs) {
		t.Fatalf("first sync: %+v, want %d new", res, len(recs))
	}
	src = find(t, db, "osv-debian")
	if src.ETag == "" || src.LastSuccess.IsZero() || src.LastError != "" || src.Advisories != len(recs) {
		t.Fatalf("after the first sync: %+v", src)
	}
	before := ids(t, db)

	res, err = sy.Sync(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if !res.NotModified || res.Created+res.Updated+res.Removed != 0 {
		t.Fatalf("second sync: %+v, want 304 and nothing changed", res)
	}
	if got := ids(t, db); strings.Join(got, " ") != strings.Join(before, " ") {
		t.Fatalf("a 304 changed the advisories: %v, was %v", got, before)
	}

	// The malformed record of the fixture (ranges is an object) makes the
	// whole archive fail: nothing is imported, the previous data stays.
	bad := map[string][]byte{"ELA-669-1.json": read(t, filepath.Join(fixtures.Path(t, "osv"), "malformed", "ELA-669-1.json"))}
	for k, v := range recs {
		bad[k] = v
	}
	srv.set("/Debian/all.zip", zipOf(t, bad))
	if _, err := sy.Sync(ctx, find(t, db, "osv-debian")); err == nil || !strings.Contains(err.Error(), "ELA-669-1.json") {
		t.Fatalf("malformed archive: %v, want an error naming ELA-669-1.json", err)
	}
	src = find(t, db, "osv-debian")
	if !strings.Contains(src.LastError, "ELA-669-1.json") || !strings.Contains(src.LastError, "ranges") || src.Advisories != len(recs) {
		t.Fatalf("after the malformed archive: last error %q, %d advisories; want the file and field named and %d kept", src.LastError, src.Advisories, len(recs))
	}
	if got := ids(t, db); strings.Join(got, " ") != strings.Join(before, " ") {
		t.Fatalf("a malformed archive changed the advisories: %v", got)
	}

	// One record less: it is removed, the rest are unchanged.
	delete(recs, "DLA-3022-1.json")
	srv.set("/Debian/all.zip", zipOf(t, recs))
	res, err = sy.Sync(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != 1 || res.Unchanged != len(recs) || find(t, db, "osv-debian").LastError != "" {
		t.Fatalf("shrunk archive: %+v", res)
	}
	if _, err := db.FindAdvisory(ctx, "DLA-3022-1"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Fatalf("DLA-3022-1 is still there: %v", err)
	}
}

// A directory listing (the HTML index a web server makes) of the fixture's
// records, served by net/http's file server with Last-Modified.
func TestSyncOSVListing(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	dir := fixtures.Path(t, "osv")
	ts := httptest.NewServer(http.StripPrefix("/osv/", http.FileServer(http.Dir(dir))))
	defer ts.Close()
	sy := &feed.Syncer{Store: db}
	src := addSource(t, db, "osv-dir", kiln.AdvisoryOSV, ts.URL+"/osv/")
	res, err := sy.Sync(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if res.Read != len(osvRecords(t)) {
		t.Fatalf("listing: %+v", res)
	}
	src = find(t, db, "osv-dir")
	if src.LastModified == "" {
		t.Fatalf("no Last-Modified kept: %+v", src)
	}
	if res, err = sy.Sync(ctx, src); err != nil || !res.NotModified {
		t.Fatalf("second sync: %+v %v, want 304", res, err)
	}

	// One record by its URL.
	one := addSource(t, db, "one", kiln.AdvisoryOSV, ts.URL+"/osv/DSA-3029-1.json")
	if res, err = sy.Sync(ctx, one); err != nil || res.Read != 1 {
		t.Fatalf("single record: %+v %v", res, err)
	}
}

// The tracker export, streamed; then an unreachable source.
func TestSyncDebianTracker(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	srv, base := serve(t)
	srv.set("/tracker/data/json", read(t, filepath.Join(fixtures.Path(t, "debian-tracker"), "anchore-vunnel__debian.json")))
	sy := &feed.Syncer{Store: db}
	src := addSource(t, db, "tracker", kiln.AdvisoryDebianTracker, base+"/tracker/data/json")
	res, err := sy.Sync(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if res.Read == 0 || res.Created != res.Read {
		t.Fatalf("tracker: %+v", res)
	}
	adv, err := db.FindAdvisory(ctx, "CVE-2022-0456")
	if err != nil {
		t.Fatal(err)
	}
	eol := false
	for _, p := range adv.Packages {
		eol = eol || (p.Release == "buster" && p.Severity == "end-of-life")
	}
	if !eol {
		t.Errorf("CVE-2022-0456 lost its end-of-life entry: %+v", adv.Packages)
	}
	if res, err := sy.Sync(ctx, find(t, db, "tracker")); err != nil || !res.NotModified {
		t.Fatalf("second sync: %+v %v, want 304", res, err)
	}

	// OSV data under a tracker source is refused by name.
	srv.set("/tracker/data/json", osvRecords(t)["DSA-3029-1.json"])
	if _, err := sy.Sync(ctx, find(t, db, "tracker")); err == nil {
		t.Fatal("an OSV record was accepted as the tracker export")
	}
	if got := find(t, db, "tracker"); got.LastError == "" || got.Advisories != res.Read {
		t.Fatalf("after a bad export: %+v", got)
	}

	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	gone := addSource(t, db, "gone", kiln.AdvisoryOSV, deadURL+"/all.zip")
	if _, err := sy.Sync(ctx, gone); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("unreachable source: %v", err)
	}
	if got := find(t, db, "gone"); !strings.Contains(got.LastError, "unreachable") || !got.LastSuccess.IsZero() || got.LastAttempt.IsZero() {
		t.Fatalf("unreachable source recorded as %+v", got)
	}
	srv.set("/missing", nil)
	missing := addSource(t, db, "missing", kiln.AdvisoryOSV, base+"/nothing-here.json")
	if _, err := sy.Sync(ctx, missing); err == nil || !strings.Contains(find(t, db, "missing").LastError, "404") {
		t.Fatalf("404: %v / %q", err, find(t, db, "missing").LastError)
	}

	// SyncDue: everything was just tried, so nothing is due for an hour.
	sy.Clock = func() time.Time { return time.Now().Add(30 * time.Minute) }
	if rs, err := sy.SyncDue(ctx); err != nil || len(rs) != 0 {
		t.Fatalf("due after 30 minutes: %+v %v", rs, err)
	}
	before := srv.requests["/tracker/data/json"]
	sy.Clock = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := sy.SyncDue(ctx); err != nil {
		t.Fatal(err)
	}
	if srv.requests["/tracker/data/json"] != before+1 {
		t.Fatalf("the due tracker source was not fetched")
	}
	if n, err := db.DeleteAdvisoryFeed(ctx, "tracker"); err != nil || n != res.Read {
		t.Fatalf("remove: %d %v, want %d advisories removed", n, err, res.Read)
	}
}
