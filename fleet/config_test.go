package fleet

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-project/kiln"
)

func TestByConfig(t *testing.T) {
	v := kiln.VersionRef{Image: "appserver", Number: 3}
	insts := []*kiln.Instance{
		{Version: v, Environment: "prod", ConfigDigest: "sha256:b", ConfigSource: "estate:/e env prod"},
		{Version: v, Environment: "dev", ConfigDigest: "sha256:a", ConfigSource: "estate:/e env dev"},
		{Version: v, Environment: "prod", ConfigDigest: "sha256:b", ConfigSource: "estate:/e env prod"},
		{Version: kiln.VersionRef{Image: "appserver", Number: 2}, Environment: "prod"},
	}
	want := []*ConfigRow{
		{Version: kiln.VersionRef{Image: "appserver", Number: 2}, Environments: []string{"prod"}, Instances: 1},
		{Version: v, ConfigDigest: "sha256:a", ConfigSource: "estate:/e env dev", Environments: []string{"dev"}, Instances: 1},
		{Version: v, ConfigDigest: "sha256:b", ConfigSource: "estate:/e env prod", Environments: []string{"prod"}, Instances: 2},
	}
	if diff := cmp.Diff(want, ByConfig(insts)); diff != "" {
		t.Errorf("ByConfig (-want +got):\n%s", diff)
	}
}
