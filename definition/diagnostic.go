package definition

import (
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/kiln-project/kiln"
)

// FormatDiagnostics renders diagnostics one a line, as
// "file:line:col: severity: summary; detail" — the form compilers use, so
// editors and CI logs link to the place. Files are named relative to the
// estate directory. Diagnostics without a position start at "severity".
func FormatDiagnostics(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		if d.Subject != nil {
			b.WriteString(d.Subject.Filename)
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(d.Subject.Start.Line))
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(d.Subject.Start.Column))
			b.WriteString(": ")
		}
		if d.Severity == hcl.DiagWarning {
			b.WriteString("warning: ")
		} else {
			b.WriteString("error: ")
		}
		b.WriteString(oneLine(d.Summary))
		if d.Detail != "" {
			b.WriteString("; ")
			b.WriteString(oneLine(d.Detail))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// DiagnosticsError returns nil when diags hold no error, and otherwise a
// *kiln.Error with code EINVALID whose message lists every diagnostic as
// FormatDiagnostics does; errors.As reaches the hcl.Diagnostics.
func DiagnosticsError(diags hcl.Diagnostics) error {
	if !diags.HasErrors() {
		return nil
	}
	return &kiln.Error{
		Code:    kiln.EINVALID,
		Message: "the estate definition has errors; fix them and load again:\n" + strings.TrimSuffix(FormatDiagnostics(diags), "\n"),
		Err:     diags,
	}
}

// sortDiagnostics orders diagnostics by place: those without a position
// first, then by file, line and column, keeping the order found otherwise.
func sortDiagnostics(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		case a.Start.Line != b.Start.Line:
			return a.Start.Line < b.Start.Line
		}
		return a.Start.Column < b.Start.Column
	})
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// pos renders where a range starts, as "file:line:col".
func pos(r hcl.Range) string {
	return r.Filename + ":" + strconv.Itoa(r.Start.Line) + ":" + strconv.Itoa(r.Start.Column)
}
