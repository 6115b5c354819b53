package pipeline_test

import (
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/debian"
	"github.com/kiln-project/kiln/pipeline"
)

func TestPackageUpdates(t *testing.T) {
	ix := debian.PackageIndex{}
	idx := "Package: openssl\nVersion: 3.0.11-1~deb12u2\nArchitecture: amd64\n\n" +
		"Package: openssl\nVersion: 3.0.13-1~deb12u1\nArchitecture: amd64\nDescription: newer\n\n" +
		"Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n\n" +
		"Package: bash\nVersion: 5.2.15-2+b2\nArchitecture: amd64\n"
	if err := debian.ParsePackages(strings.NewReader(idx), ix); err != nil {
		t.Fatal(err)
	}
	ups := ix.Updates([]kiln.Package{
		{Name: "openssl", Version: "3.0.11-1~deb12u2", Architecture: "amd64"},
		{Name: "tzdata", Version: "2023c-5+deb12u1", Architecture: "all"},
		{Name: "bash", Version: "5.2.15-2+b2", Architecture: "amd64"},
		{Name: "local-only", Version: "1", Architecture: "amd64"},
	})
	got := pipeline.FormatUpdates(ups, 5)
	if got != "openssl 3.0.11-1~deb12u2 → 3.0.13-1~deb12u1, tzdata 2023c-5+deb12u1 → 2024a-0+deb12u1" {
		t.Fatalf("updates: %s", got)
	}
}
