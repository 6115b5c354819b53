package advisory

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

func TestParseOSVSharedFixtures(t *testing.T) {
	dir := needFixture(t, "osv")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		t.Fatalf("no OSV records in %s", dir)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		a, err := ParseOSV(filepath.Base(f), data)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if len(a.Packages) == 0 {
			t.Errorf("%s: no Debian packages kept", f)
		}
		if testing.Verbose() {
			b, _ := json.Marshal(a.Packages)
			t.Logf("%s: %s aliases=%v %s", filepath.Base(f), a.ID, a.Aliases, b)
		}
	}
}

func TestParseOSVSharedMalformed(t *testing.T) {
	f := filepath.Join(needFixture(t, "osv/malformed"), "ELA-669-1.json")
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseOSV("ELA-669-1.json", data)
	if err == nil {
		t.Fatal("the malformed record was accepted")
	}
	if kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("code %q, want invalid", kiln.ErrorCode(err))
	}
	msg := err.Error()
	for _, want := range []string{"ELA-669-1.json:", "affected[0].ranges", "array"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	t.Log(msg)
}
