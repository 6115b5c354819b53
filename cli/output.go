package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
)

// Output formats accepted by --output.
const (
	FormatTable = "table"
	FormatJSON  = "json"
)

func checkFormat(f string, allowed ...string) error {
	for _, a := range allowed {
		if f == a {
			return nil
		}
	}
	return kiln.FieldErrorf(kiln.EINVALID, "--output", "unknown output format %q; use %s", f, strings.Join(allowed, " or "))
}

// writeJSON writes v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns. Cells are sanitised so a value with a tab or
// newline cannot break the layout.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		c = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, c)
		if c == "" {
			c = "-"
		}
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, c)
	}
	fmt.Fprintln(t.tw)
}

func (t *table) flush() error { return t.tw.Flush() }

// render writes v as JSON with --output json, and otherwise the table or
// text form that text writes to w: the one place a command's output
// format is chosen.
func (a *App) render(w io.Writer, v any, text func(w io.Writer) error) error {
	if a.cfg.Output == FormatJSON {
		return writeJSON(w, v)
	}
	return text(w)
}

// progress is where a command prints its live progress: stderr, or
// nowhere with --output json (the JSON document is the output).
func (a *App) progress(cmd *cobra.Command) io.Writer {
	if a.cfg.Output == FormatJSON {
		return io.Discard
	}
	return cmd.ErrOrStderr()
}

// orEmpty is s, or an empty slice for nil: JSON lists are [] rather than
// null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
