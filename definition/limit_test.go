package definition_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/definition"
)

// TestLoadShapeLimits feeds files that would make HCL's recursive parser
// or evaluator overflow the stack if they were deep enough, and checks
// each is refused with a message, while the same shape within the limits
// loads.
func TestLoadShapeLimits(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"nested brackets", "locals { a = " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + " }", "error: Nested too deeply;"},
		{"nested templates", "locals { a = " + strings.Repeat(`"${`, 40) + "1" + strings.Repeat(`}"`, 40) + " }", "error: Nested too deeply;"},
		{"operator run", "locals { a = " + strings.Repeat("!", 100) + "true }", "error: Expression too complex;"},
		{"operator count", "locals { a = 1" + strings.Repeat("+1", definition.MaxOperators+1) + " }", "error: Expression too complex;"},
		{"size", "# " + strings.Repeat("x", definition.MaxFileSize) + "\n", "error: File too large;"},
		{"within limits", "locals {\n  a = " + strings.Repeat("[", 30) + strings.Repeat("]", 30) + "\n  b = 1" + strings.Repeat("+1", 1000) + "\n}\n", "error: No images;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "x.kiln.hcl"), []byte(tt.src), 0o644); err != nil {
				t.Fatal(err)
			}
			_, diags := definition.Load(dir, definition.Options{})
			got := definition.FormatDiagnostics(diags)
			if len(diags) != 1 || !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want one diagnostic with %q", got, tt.want)
			}
		})
	}
	t.Run("variable value", func(t *testing.T) {
		dir := t.TempDir()
		src := "variable \"x\" {\n  type = list(string)\n}\nimage \"a\" {\n  debian {\n    suite = \"bookworm\"\n  }\n}\n"
		if err := os.WriteFile(filepath.Join(dir, "x.kiln.hcl"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		_, diags := definition.Load(dir, definition.Options{Vars: map[string]string{"x": strings.Repeat("[", 1000)}})
		if got := definition.FormatDiagnostics(diags); !strings.Contains(got, "Nested too deeply") {
			t.Errorf("got %q, want the deep --var value refused", got)
		}
	})
}
