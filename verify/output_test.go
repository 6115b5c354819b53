package verify

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// sampleReport has one result of each kind, with fixed times.
func sampleReport() *Report {
	ms := time.Millisecond
	rep := &Report{
		Started:  time.Date(2026, 2, 28, 4, 20, 0, 0, time.UTC),
		Duration: 1234 * ms,
		Results: []Result{
			{Type: "file", ID: "/etc/motd", Property: "exists", Source: "goss.yaml:2", Outcome: Pass, Expected: "true", Found: "true", Duration: 1 * ms},
			{Type: "file", ID: "/etc/motd", Property: "mode", Source: "goss.yaml:2", Outcome: Fail, Expected: "0644", Found: "0600", Duration: 1 * ms},
			{Type: "file", ID: "/etc/motd", Property: "contents", Source: "goss.yaml:2", Outcome: Fail, Expected: "[welcome, !debug]",
				Found: "hello\n<debug> & more\n", Detail: "patterns not satisfied: [welcome !debug]", Duration: 2 * ms},
			{Type: "command", ID: "curl -s localhost", Property: "exit-status", Title: "the site answers", Meta: map[string]any{"sev": 5},
				Source: "goss.yaml:9", Outcome: Fail, Expected: "0", Error: "command timed out after 10s", Duration: 10 * time.Second},
			{Type: "service", ID: "nginx", Property: "running", Source: "goss.yaml:14", Outcome: Skip, Expected: "true"},
		},
	}
	rep.summarize()
	return rep
}

func TestOutputsGolden(t *testing.T) {
	for _, format := range []string{"text", "json", "junit", "tap"} {
		t.Run(format, func(t *testing.T) {
			out, err := OutputFor(format)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := out.Write(&buf, sampleReport()); err != nil {
				t.Fatal(err)
			}
			ext := map[string]string{"text": "txt", "json": "json", "junit": "xml", "tap": "tap"}[format]
			golden := filepath.Join("testdata", "out_sample."+ext)
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), buf.String()); diff != "" {
				t.Errorf("%s output differs from %s (-want +got):\n%s", format, golden, diff)
			}
		})
	}
	if _, err := OutputFor("yaml"); err == nil {
		t.Error("OutputFor(yaml) succeeded")
	}
	if out, err := OutputFor("documentation"); err != nil || out != (Text{}) {
		t.Errorf("OutputFor(documentation) = %v, %v; want goss's name for the text output", out, err)
	}
}

func TestJUnitParses(t *testing.T) {
	var buf bytes.Buffer
	if err := (JUnit{}).Write(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("junit.xml does not parse: %v", err)
	}
	s := doc.Suites[0]
	buf.Reset()
	nasty := sampleReport()
	nasty.Results[1].Found = "binary\x00\x1b[31m ]]> </failure>"
	if err := (JUnit{}).Write(&buf, nasty); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("junit.xml with control characters does not parse: %v", err)
	}
	if s.Tests != 5 || s.Failures != 2 || s.Errors != 1 || s.Skipped != 1 || len(s.Cases) != 5 {
		t.Errorf("suite counts = tests %d failures %d errors %d skipped %d cases %d", s.Tests, s.Failures, s.Errors, s.Skipped, len(s.Cases))
	}
	if s.Cases[2].Failure == nil || s.Cases[3].Error == nil || s.Cases[4].Skipped == nil {
		t.Errorf("cases lack their failure/error/skipped elements: %+v", s.Cases)
	}
}

func TestWriteDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "reports", "run-1")
	rep := sampleReport()
	if err := rep.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	// JSON numbers come back as float64.
	rep.Results[3].Meta = map[string]any{"sev": 5.0}
	if diff := cmp.Diff(rep, &got); diff != "" {
		t.Errorf("report.json round trip (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, "junit.xml")); err != nil {
		t.Error(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("dir holds %d entries, want report.json and junit.xml only", len(entries))
	}
}
