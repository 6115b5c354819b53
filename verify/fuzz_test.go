package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// FuzzParse checks that no input makes the parser panic or return a suite
// the probe cannot take, and that every error is a located kiln error.
// Seeds: testdata/fuzz/FuzzParse and the *.yaml files under testdata/.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("file:\n  /etc/motd: {exists: true, mode: \"0644\", contents: [a, '!b', '/c+/']}\n"))
	f.Add([]byte("user:\n  u: {exists: true, uid: {and: [{gt: 1}, {not: {lt: 0}}]}, groups: {consist-of: [a, {have-prefix: b}]}}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		watchdog := time.AfterFunc(5*time.Second, func() { panic(fmt.Sprintf("parse hangs on %q", data)) })
		defer watchdog.Stop()
		s, err := parse("fuzz.yaml", data, false, ParseOptions{})
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("parse took %s", d)
		}
		if err != nil {
			var ke *kiln.Error
			if !errors.As(err, &ke) || ke.Code != kiln.EINVALID {
				t.Fatalf("error is not an EINVALID *kiln.Error: %#v", err)
			}
			return
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("suite does not encode: %v", err)
		}
		var back Suite
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("suite does not decode: %v", err)
		}
		if back.Count() == 0 {
			t.Fatal("parsed a suite with no checks")
		}
		for _, r := range back.Resources {
			for _, c := range r.Checks {
				if c.Expect == nil {
					t.Fatalf("%s %s: %s has no expectation", r.Type, r.ID, c.Property)
				}
				for _, found := range []any{"x\ny", 1, true, []string{"a", "b"}} {
					_, _ = c.Expect.Match(found)
				}
				_ = c.Expect.String()
			}
		}
	})
}
