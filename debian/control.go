package debian

import (
	"bufio"
	"io"
	"strings"
)

// Paragraph holds the fields of one paragraph of a control file (dpkg's
// status file, a Packages index), by field name as written ("Package",
// "Version").
type Paragraph map[string]string

// maxLine bounds one line; Packages lists have long Description lines.
const maxLine = 4 << 20

// ScanParagraphs calls fn with each paragraph of r that has at least one
// of the fields named in keep (every field when keep is empty), holding
// only those fields. The paragraph is reused: fn must copy what it keeps.
// It stops at the first error fn returns, and returns it.
func ScanParagraphs(r io.Reader, keep []string, fn func(Paragraph) error) error {
	want := map[string]bool{}
	for _, k := range keep {
		want[k] = true
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	p := Paragraph{}
	flush := func() error {
		if len(p) == 0 {
			return nil
		}
		err := fn(p)
		clear(p)
		return err
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' || line[0] == '#' {
			continue // a continuation line, or a comment
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || (len(want) > 0 && !want[k]) {
			continue
		}
		p[k] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return flush()
}
