package feed_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"iter"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/feed"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/fixtures"
	"github.com/kiln-project/kiln/store"
)

// eachBackend runs fn on a fresh SQLite database and on a fresh schema of
// the PostgreSQL named by KILN_TEST_POSTGRES (skipped without it, failing
// under CI=true).
func eachBackend(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, openDB(t)) })
	t.Run("postgres", func(t *testing.T) {
		base := ci.Postgres(t)
		var b [6]byte
		_, _ = rand.Read(b[:])
		schema := "kiln_feed_" + hex.EncodeToString(b[:])
		admin, err := sql.Open("pgx", base)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
			_ = admin.Close()
			t.Fatalf("create schema: %v", err)
		}
		t.Cleanup(func() {
			if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
				t.Errorf("drop schema %s: %v", schema, err)
			}
			_ = admin.Close()
		})
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		db, err := store.Open(context.Background(), u.String(), t.TempDir(), slog.New(slog.DiscardHandler), time.Now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		fn(t, db)
	})
}

// zipInOrder makes an archive whose entries come in the order names gives.
func zipInOrder(t testing.TB, names []string, recs map[string][]byte) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(recs[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// cancelling is a store whose import is cut off (its context cancelled)
// after n advisories were read from the stream: several chunks are
// written by then, in the transaction that must roll back.
type cancelling struct {
	*store.DB
	n      int
	cancel context.CancelFunc
}

func (c *cancelling) ReplaceFeedAdvisories(ctx context.Context, name string, advs iter.Seq2[*kiln.Advisory, error], etag, lastModified string) (kiln.FeedImport, error) {
	return c.DB.ReplaceFeedAdvisories(ctx, name, func(yield func(*kiln.Advisory, error) bool) {
		i := 0
		for a, err := range advs {
			if i == c.n {
				c.cancel()
			}
			i++
			if !yield(a, err) {
				return
			}
		}
	}, etag, lastModified)
}

// A sync that fails after many good records — a malformed record at the
// end of an all.zip, a malformed package at the end of a tracker export,
// or an import cut off after 1,200 advisories were written — keeps the
// source's previous advisories, validators and count, and says why.
func TestSyncFailingMidwayKeepsAdvisories(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		srv, base := serve(t)
		recs := osvRecords(t)
		srv.set("/Debian/all.zip", zipOf(t, recs))
		sy := &feed.Syncer{Store: db, TempDir: t.TempDir()}
		must(t, sy, addSource(t, db, "osv", kiln.AdvisoryOSV, base+"/Debian/all.zip"))
		srv.set("/tracker/data/json", read(t, filepath.Join(fixtures.Path(t, "debian-tracker"), "anchore-vunnel__debian.json")))
		must(t, sy, addSource(t, db, "tracker", kiln.AdvisoryDebianTracker, base+"/tracker/data/json"))
		before := ids(t, db)
		held := map[string]int{"osv": find(t, db, "osv").Advisories, "tracker": find(t, db, "tracker").Advisories}
		etags := map[string]string{"osv": find(t, db, "osv").ETag, "tracker": find(t, db, "tracker").ETag}
		kept := func(source, why string) {
			t.Helper()
			got := find(t, db, source)
			if got.Advisories != held[source] || got.ETag != etags[source] {
				t.Errorf("%s: source %s now says %d advisories, etag %s; want the previous %d, %s", why, source, got.Advisories, got.ETag, held[source], etags[source])
			}
			if now := ids(t, db); !slices.Equal(now, before) {
				t.Errorf("%s: %d advisories stored, want the previous %d", why, len(now), len(before))
			}
		}

		// 1,350 good records, then the fixture's malformed one.
		big := map[string][]byte{}
		var names []string
		for i := range 150 {
			for n, r := range recs {
				id := strings.TrimSuffix(n, ".json")
				name := fmt.Sprintf("%04d-%s", i, n)
				big[name] = bytes.Replace(r, []byte(`"`+id+`"`), []byte(fmt.Sprintf(`"%s-%d"`, id, i)), 1)
				names = append(names, name)
			}
		}
		slices.Sort(names)
		big["ELA-669-1.json"] = read(t, filepath.Join(fixtures.Path(t, "osv"), "malformed", "ELA-669-1.json"))
		srv.set("/Debian/all.zip", zipInOrder(t, append(names, "ELA-669-1.json"), big))
		_, err := sy.Sync(ctx, find(t, db, "osv"))
		if err == nil || !strings.Contains(err.Error(), "ELA-669-1.json") {
			t.Fatalf("malformed last record: %v, want an error naming ELA-669-1.json", err)
		}
		if got := find(t, db, "osv").LastError; !strings.Contains(got, "ELA-669-1.json") || !strings.Contains(got, "ranges") {
			t.Errorf("last error %q; want the file and the field", got)
		}
		kept("osv", "malformed last record")

		// The tracker export copied 200 times, then a package with a bad
		// status.
		export := trackerCopies(t, 200)
		export = append(export[:len(export)-1], []byte(`,"zz-bad": {"CVE-2099-1": {"releases": {"sid": {"status": "bogus", "urgency": "low"}}}}}`)...)
		srv.set("/tracker/data/json", export)
		if _, err := sy.Sync(ctx, find(t, db, "tracker")); err == nil || !strings.Contains(find(t, db, "tracker").LastError, "status") {
			t.Fatalf("malformed last package: %v (last error %q), want the status named", err, find(t, db, "tracker").LastError)
		}
		kept("tracker", "malformed last package")

		// Good records only, but the import is cut off after 1,200 were
		// written to the transaction.
		delete(big, "ELA-669-1.json")
		srv.set("/Debian/all.zip", zipInOrder(t, names, big))
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		cut := &feed.Syncer{Store: &cancelling{DB: db, n: 1200, cancel: cancel}, TempDir: t.TempDir()}
		if _, err := cut.Sync(cctx, find(t, db, "osv")); err == nil {
			t.Fatal("an import cancelled midway succeeded")
		}
		if got := find(t, db, "osv").LastError; !strings.Contains(got, "cancel") {
			t.Errorf("last error %q; want the cancellation", got)
		}
		kept("osv", "import cut off")

		// The same archive, not cut off, is imported whole.
		res, err := sy.Sync(ctx, find(t, db, "osv"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Read != len(names) || find(t, db, "osv").Advisories != len(names) {
			t.Fatalf("full archive: %+v, want %d advisories", res, len(names))
		}
	})
}

func must(t *testing.T, sy *feed.Syncer, src *kiln.AdvisoryFeed) {
	t.Helper()
	if _, err := sy.Sync(context.Background(), src); err != nil {
		t.Fatal(err)
	}
}
