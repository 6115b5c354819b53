package api

import (
	"encoding/json"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
)

// TestCheckinBodyJSON: the hand-written encoding of a check-in's answer is
// byte for byte json.Marshal's, for every field set and unset, strings
// that need escaping, and times in other zones.
func TestCheckinBodyJSON(t *testing.T) {
	at := time.Date(2026, 12, 7, 2, 30, 1, 123456000, time.UTC)
	odd := "a\"b\\c\n\r\t\b\f\x01\x1f<tag>&\u2028\u2029é€😀\xff\xfe end"
	full := &kiln.Instance{ID: "i-1", Name: odd, Version: kiln.VersionRef{Image: "appserver", Number: 42}, Environment: "prod",
		Platform: "external", State: kiln.InstanceDegraded, Address: "10.0.0.1:22", Labels: map[string]string{"z": odd, "a": "1", odd: "k"},
		LaunchedAt: at, LastSeenAt: at.In(time.FixedZone("X", 5*3600+1800)), Tainted: true, LaunchedByKiln: true,
		AgentTokenSHA256: "secret", ConfigDigest: "sha256:abc", ConfigSource: "rollout web"}
	cases := []*kiln.CheckinResult{
		nil,
		{},
		{Instance: &kiln.Instance{ID: "i-2"}, Created: true},
		{Instance: &kiln.Instance{ID: "i-3", LaunchedAt: at, LastSeenAt: at.Add(time.Second)}, Unknown: true},
		{Instance: full, Created: true, Unknown: true},
		{Instance: &kiln.Instance{ID: "i-4", LaunchedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
	for i, c := range cases {
		want, wantErr := json.Marshal(c)
		got, gotErr := json.Marshal(checkinBody{c})
		if (wantErr == nil) != (gotErr == nil) {
			t.Errorf("case %d: error %v, want %v", i, gotErr, wantErr)
			continue
		}
		if string(got) != string(want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}
