package fleet

import (
	"testing"

	"github.com/kiln-project/kiln"
)

func TestBuildStaleForChannels(t *testing.T) {
	us := []*kiln.Usage{
		{Image: "appserver", Number: 2, Environment: "dev", Known: true, LatestReady: 4, Instances: 1},
		{Image: "appserver", Number: 3, Environment: "prod", Known: true, LatestReady: 4, Instances: 5},
		{Image: "appserver", Number: 4, Environment: "prod", Known: true, LatestReady: 4, Instances: 2},
		{Image: "appserver", Number: 4, Environment: "staging", Known: true, LatestReady: 4, Instances: 3},
	}
	// prod's channel points at appserver-3 (rolled back); staging has no
	// channel; dev's points at 4.
	ch := Channels{{"appserver", "prod"}: 3, {"appserver", "dev"}: 4}
	got := BuildStaleFor(us, "", ch)
	type row struct {
		name, should, against string
		behind, n             int
	}
	want := []row{
		{"appserver-2", "appserver-4", "channel dev", 2, 1},
		{"appserver-4", "appserver-3", "channel prod", -1, 2},
	}
	if len(got.Rows) != len(want) || got.Instances != 3 || got.Versions != 2 {
		t.Fatalf("stale = %+v", got)
	}
	for i, w := range want {
		r := got.Rows[i]
		if (row{r.Name, r.Latest, r.Against, r.Behind, r.Instances}) != w {
			t.Errorf("row %d = %+v, want %+v", i, r, w)
		}
	}
	// Without channels, only versions older than the latest ready are stale.
	if plain := BuildStaleFor(us, "", nil); plain.Instances != 6 || plain.Rows[0].Against != "latest ready" {
		t.Errorf("without channels: %+v", plain)
	}
}
