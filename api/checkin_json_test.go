package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"

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
		// What the API writes: huma's JSON format's bytes and errors.
		formats := jsonFormats(huma.DefaultFormats)
		for _, v := range []any{checkinBody{c}, c} {
			var wantW, gotW bytes.Buffer
			wantErr := huma.DefaultJSONFormat.Marshal(&wantW, v)
			for _, ct := range []string{"application/json", "json"} {
				gotW.Reset()
				gotErr := formats[ct].Marshal(&gotW, v)
				if gotW.String() != wantW.String() || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
					t.Errorf("case %d, %T as %s: wrote %q, %v; huma writes %q, %v", i, v, ct, gotW.String(), gotErr, wantW.String(), wantErr)
				}
			}
		}
	}
}

// checkinBodies are check-in bodies the fast reader takes and those it
// leaves to encoding/json: escapes, nulls, other spellings, repeated
// fields, invalid UTF-8, trailing data, syntax errors.
var checkinBodies = []string{
	`{"instance_id":"i-00001","hostname":"h-1-1","environment":"prod","release":{"image":"appserver","version":"1"}}`,
	` { "instance_id" : "web-1" ,` + "\n\t\r" + ` "address":"10.0.0.1", "labels" : { "team":"web", "az":"a", "team":"db" }, "release":{"image":"appserver","version":"1","name":"appserver-1"} } ` + "\n",
	`{}`, `{"labels":{},"release":{}}`, `{"instance_id":""}`,
	"{\"instance_id\":\"caf\u00e9-1\",\"hostname\":\"\u2028\",\"release\":{\"image\":\"appserver\",\"version\":\"1\"}}",
	`{"instance_id":"caf\u00e9-1","release":{"image":"appserver","version":"1"}}`,
	`{"instance_id":"web\u002d1","release":{"image":"appserver","version":"1"}}`,
	`{"instance_id":"web-1","hostname":null,"release":{"image":"appserver","version":"1"}}`,
	`{"instance_id":"web-1","labels":null,"release":{"image":"appserver","version":"1"}}`,
	`{"Instance_ID":"web-1","release":{"image":"appserver","version":"1"}}`,
	`{"instance_id":"web-1","instance_id":"web-2","release":{"image":"appserver","version":"1"}}`,
	`{"instance_id":"web-1","release":{"image":"appserver"},"release":{"version":"1"}}`,
	`{"instance_id":"web-1","colour":"red","release":{"image":"appserver","version":"1"}}`,
	`{"instance_id":"i-0abc","hostname":"web-1","environment":"prod","artifact":"us-east-1:ami-0abc123"}`,
	`{"instance_id":"i-0abc","artifact":"us-east-1:ami-0abc123","artifact":"x"}`,
	`{"instance_id":"i-0abc","artifact":null}`,
	`{"instance_id":"web-1","release":{"image":"appserver","version":1}}`,
	`{"instance_id":12,"release":{"image":"appserver","version":"1"}}`,
	"{\"instance_id\":\"web-\xff\",\"release\":{\"image\":\"appserver\",\"version\":\"1\"}}",
	"{\"instance_id\":\"web-\x01\"}",
	`{"instance_id":"web-1"}{}`, `{"instance_id":"web-1"} x`, `{"instance_id":"web-1",}`, `{"instance_id":"web-1"`,
	`{"instance_id" "web-1"}`, `{"labels":{"a":"b",}}`, `{"labels":{"a"}}`, `{"labels":["a"]}`, `[]`, `null`, ``, ` `, `"x"`,
}

// FuzzCheckinDecode: whatever body the fast reader takes, encoding/json
// (decodeStrict) takes too and decodes to the same check-in; and
// decodeCheckin answers every body exactly as decodeStrict does.
func FuzzCheckinDecode(f *testing.F) {
	for _, b := range checkinBodies {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var want kiln.Checkin
		wantErr := decodeStrict([]byte(body), &want)
		var fast kiln.Checkin
		if readCheckinFast([]byte(body), &fast) {
			if wantErr != nil || !reflect.DeepEqual(fast, want) {
				t.Fatalf("%q: fast reader decoded %+v; encoding/json %+v, %v", body, fast, want, wantErr)
			}
		}
		var got kiln.Checkin
		gotErr := decodeCheckin([]byte(body), &got)
		if !reflect.DeepEqual(got, want) || (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
			t.Fatalf("%q: decodeCheckin gave %+v, %v; decodeStrict %+v, %v", body, got, gotErr, want, wantErr)
		}
	})
}

// TestCheckinFastReaderTakesAgentBodies: the bodies agents send are read
// by hand, not left to encoding/json.
func TestCheckinFastReaderTakesAgentBodies(t *testing.T) {
	for _, body := range checkinBodies[:6] {
		var c kiln.Checkin
		if !readCheckinFast([]byte(body), &c) {
			t.Errorf("%s: left to encoding/json", body)
		}
	}
}
