package definition_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
)

func TestFormatDiagnostics(t *testing.T) {
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Bad thing", Detail: "it is bad;\nfix it.",
			Subject: &hcl.Range{Filename: "a.kiln.hcl", Start: hcl.Pos{Line: 3, Column: 7}}},
		{Severity: hcl.DiagWarning, Summary: "Odd thing"},
	}
	want := "a.kiln.hcl:3:7: error: Bad thing; it is bad; fix it.\nwarning: Odd thing\n"
	if got := definition.FormatDiagnostics(diags); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDiagnosticsError(t *testing.T) {
	if err := definition.DiagnosticsError(hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: "w"}}); err != nil {
		t.Errorf("warnings only: got %v, want nil", err)
	}
	_, diags := definition.Load("testdata/estates/bad-cycle", definition.Options{})
	err := definition.DiagnosticsError(diags)
	if kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("code = %q, want %q", kiln.ErrorCode(err), kiln.EINVALID)
	}
	var hd hcl.Diagnostics
	if !errors.As(err, &hd) || len(hd) != 2 {
		t.Errorf("errors.As(hcl.Diagnostics) = %v, %d diagnostics; want the 2 cycles", hd, len(hd))
	}
	if msg := kiln.ErrorMessage(err); !strings.Contains(msg, "cycle.kiln.hcl:2:10: error: Cycle between images;") {
		t.Errorf("message %q does not locate the cycle", msg)
	}
}
