package verify

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Output renders a Report in one format.
type Output interface {
	Write(w io.Writer, rep *Report) error
}

// OutputNames are the report formats OutputFor knows. goss's names are
// accepted too: documentation (kiln's text, which reads like it), tap,
// junit and json.
var OutputNames = []string{"text", "documentation", "tap", "json", "junit"}

// OutputFor returns the output named by a --format flag.
func OutputFor(format string) (Output, error) {
	switch format {
	case "text", "documentation", "":
		return Text{}, nil
	case "tap":
		return TAP{}, nil
	case "json":
		return JSON{}, nil
	case "junit":
		return JUnit{}, nil
	}
	return nil, fmt.Errorf("unknown report format %q: use %s", format, strings.Join(OutputNames, ", "))
}

// TAP is the Test Anything Protocol, as goss's tap format writes it: the
// plan, then "ok N - …" or "not ok N - …" per check, skipped checks as
// "ok N - # SKIP …".
type TAP struct{}

// Write writes the report as TAP version 12.
func (TAP) Write(w io.Writer, rep *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "1..%d\n", len(rep.Results))
	for i, r := range rep.Results {
		head := fmt.Sprintf("%s: %s: %s", r.Type, r.ID, r.Property)
		switch {
		case r.Outcome == Pass:
			fmt.Fprintf(&b, "ok %d - %s: matches expectation: %s\n", i+1, head, oneLine(r.Expected))
		case r.Outcome == Skip:
			fmt.Fprintf(&b, "ok %d - # SKIP %s: skipped\n", i+1, head)
		case r.Error != "":
			fmt.Fprintf(&b, "not ok %d - %s: error: %s\n", i+1, head, oneLine(r.Error))
		default:
			fmt.Fprintf(&b, "not ok %d - %s: expected %s, found %s\n", i+1, head, oneLine(r.Expected), oneLine(r.Found))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Text is the human-readable report: one line per check, then totals.
type Text struct{}

// Write prints "✓ type id: property: found" for a pass and
// "✗ type id: property: expected X, found Y" for a failure.
func (Text) Write(w io.Writer, rep *Report) error {
	var b strings.Builder
	for _, r := range rep.Results {
		head := fmt.Sprintf("%s %s: %s", r.Type, r.ID, r.Property)
		switch r.Outcome {
		case Pass:
			fmt.Fprintf(&b, "✓ %s: %s", head, oneLine(r.Found))
		case Skip:
			fmt.Fprintf(&b, "- %s: skipped", head)
		default:
			if r.Error != "" {
				fmt.Fprintf(&b, "✗ %s: expected %s, error: %s", head, oneLine(r.Expected), oneLine(r.Error))
			} else {
				fmt.Fprintf(&b, "✗ %s: expected %s, found %s", head, oneLine(r.Expected), oneLine(r.Found))
			}
		}
		if r.Title != "" {
			fmt.Fprintf(&b, " (%s)", r.Title)
		}
		b.WriteByte('\n')
		if r.Outcome == Fail && r.Detail != "" {
			fmt.Fprintf(&b, "    %s\n", r.Detail)
		}
	}
	fmt.Fprintf(&b, "\nCount: %d, Failed: %d, Skipped: %d, Duration: %.3fs\n",
		rep.Summary.Count, rep.Summary.Failed, rep.Summary.Skipped, rep.Duration.Seconds())
	_, err := io.WriteString(w, b.String())
	return err
}

// oneLine keeps multi-line values (command output, file contents) on the
// check's line; JSON and JUnit keep them whole.
func oneLine(s string) string {
	if s == "" {
		return `""`
	}
	if strings.ContainsAny(s, "\n\r") {
		s = strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// JSON is the report as kiln stores it (report.json).
type JSON struct{}

// Write writes the report as indented JSON.
func (JSON) Write(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// JUnit is the report as JUnit XML, which CI systems display: one test case
// per check, named "id: property" in a class named for the resource type.
// Mismatches are failures; checks that could not be probed are errors.
type JUnit struct{}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Skipped   *junitMessage `xml:"skipped"`
	Failure   *junitMessage `xml:"failure"`
	Error     *junitMessage `xml:"error"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr,omitempty"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",cdata"`
}

// xmlSafe replaces what XML 1.0 cannot hold (NUL, escape and other control
// characters from binary files or terminal output) with U+FFFD.
func xmlSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r != 0xFFFE && r != 0xFFFF && (r < 0xD800 || r > 0xDFFF)) {
			return r
		}
		return '\uFFFD'
	}, s)
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// Write writes the report as one JUnit test suite.
func (JUnit) Write(w io.Writer, rep *Report) error {
	s := junitSuite{Name: "kiln verify", Time: seconds(rep.Duration),
		Timestamp: rep.Started.UTC().Format("2006-01-02T15:04:05")}
	for _, r := range rep.Results {
		r.ID, r.Expected, r.Found, r.Error, r.Detail, r.Title = xmlSafe(r.ID), xmlSafe(r.Expected), xmlSafe(r.Found), xmlSafe(r.Error), xmlSafe(r.Detail), xmlSafe(r.Title)
		c := junitCase{Name: r.ID + ": " + r.Property, Classname: r.Type, Time: seconds(r.Duration), SystemOut: r.Title}
		if file, _, ok := strings.Cut(r.Source, ":"); ok {
			c.File = file
		}
		switch {
		case r.Outcome == Skip:
			c.Skipped = &junitMessage{Message: "skip: true"}
			s.Skipped++
		case r.Outcome == Fail && r.Error != "":
			c.Error = &junitMessage{Type: "probe", Message: r.Error,
				Text: fmt.Sprintf("%s %s: %s\nexpected: %s\nerror: %s\n", r.Type, r.ID, r.Property, r.Expected, r.Error)}
			s.Errors++
		case r.Outcome == Fail:
			text := fmt.Sprintf("%s %s: %s\nexpected: %s\nfound: %s\n", r.Type, r.ID, r.Property, r.Expected, r.Found)
			if r.Detail != "" {
				text += r.Detail + "\n"
			}
			c.Failure = &junitMessage{Type: "mismatch", Message: "expected " + oneLine(r.Expected) + ", found " + oneLine(r.Found), Text: text}
			s.Failures++
		}
		s.Cases = append(s.Cases, c)
		s.Tests++
	}
	doc := junitSuites{Tests: s.Tests, Failures: s.Failures, Errors: s.Errors, Skipped: s.Skipped,
		Time: s.Time, Suites: []junitSuite{s}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// WriteDir writes report.json and junit.xml into dir, creating it. Each
// file appears whole or not at all (written aside, then renamed).
func (r *Report) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	for name, out := range map[string]Output{"report.json": JSON{}, "junit.xml": JUnit{}} {
		if err := writeFileAtomic(filepath.Join(dir, name), func(w io.Writer) error { return out.Write(w, r) }); err != nil {
			return fmt.Errorf("write the report: %w", err)
		}
	}
	return nil
}

func writeFileAtomic(path string, fill func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
