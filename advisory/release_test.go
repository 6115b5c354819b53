package advisory

import (
	"testing"

	"github.com/kiln-project/kiln"
)

func TestReleaseOfPackages(t *testing.T) {
	for _, c := range []struct {
		version, want string
	}{
		{"12.4+deb12u5", "bookworm"},
		{"11.1+deb11u9", "bullseye"},
		{"13", "trixie"},
		{"1:12.4", "bookworm"},
		{"99.1", ""},
	} {
		pkgs := []kiln.Package{{Name: "bash", Version: "5.2.15-2+b2"}, {Name: "base-files", Version: c.version}}
		if got := ReleaseOfPackages(pkgs); got != c.want {
			t.Errorf("base-files %s: release %q, want %q", c.version, got, c.want)
		}
	}
	if got := ReleaseOfPackages([]kiln.Package{{Name: "bash", Version: "5.2"}}); got != "" {
		t.Errorf("no base-files: release %q, want none", got)
	}
}
