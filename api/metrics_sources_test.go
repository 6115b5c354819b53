package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/store"
)

// /metrics reports each advisory source's last success, last error and
// advisories held.
func TestMetricsAdvisorySources(t *testing.T) {
	ctx := kiln.WithActor(context.Background(), "local:test")
	db, err := store.Open(ctx, "", t.TempDir(), slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, name := range []string{"good", "broken"} {
		if err := db.CreateAdvisoryFeed(ctx, &kiln.AdvisoryFeed{Name: name, Kind: kiln.AdvisoryOSV, URL: "http://127.0.0.1:9/" + name, Every: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	advs := []*kiln.Advisory{{ID: "DSA-1-1", Source: kiln.AdvisoryOSV, Packages: []kiln.AffectedPackage{{Name: "openssl", Status: kiln.AffectedOpen}}}}
	if _, err := db.ReplaceFeedAdvisories(ctx, "good", kiln.AdvisoriesOf(advs), `"e1"`, ""); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordFeedCheck(ctx, "broken", kiln.FeedCheck{Err: "unreachable"}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := db.CreateToken(ctx, &kiln.NewToken{Name: "viewer", Role: kiln.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(api.New(api.Config{}.WithStores(db)))
	defer ts.Close()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+api.MetricsPath, nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	for _, want := range []string{
		`kiln_advisory_source_advisories{source="good"} 1`,
		`kiln_advisory_source_advisories{source="broken"} 0`,
		`kiln_advisory_source_last_error{source="good"} 0`,
		`kiln_advisory_source_last_error{source="broken"} 1`,
		`kiln_advisory_source_last_success_timestamp_seconds{source="broken"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, `kiln_advisory_source_last_success_timestamp_seconds{source="good"} 0`) {
		t.Error("the good source's last success is 0")
	}
}
