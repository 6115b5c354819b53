package rollout

import (
	"context"
	"io"
	"slices"
	"testing"

	"github.com/kiln-project/kiln"
)

// guest is a GuestDrift whose answers are given.
type guest struct {
	status  string
	files   []kiln.DriftEntry
	ignored int
	creds   []kiln.DriftEntry
}

func (g *guest) Exec(_ context.Context, _ string, argv []string, stdio kiln.ExecIO) (int, error) {
	if !slices.Equal(argv, []string{"cat", "/var/lib/dpkg/status"}) {
		return 1, nil
	}
	_, err := io.WriteString(stdio.Stdout, g.status)
	return 0, err
}

func (g *guest) CredentialDrift(context.Context, string) ([]kiln.DriftEntry, error) {
	return g.creds, nil
}

func (g *guest) FileDrift(context.Context, string) ([]kiln.DriftEntry, int, error) {
	return g.files, g.ignored, nil
}

// TestCompareGuest: a VM's drift holds its files (with the volatile
// count), its packages against the manifest and its credentials.
func TestCompareGuest(t *testing.T) {
	g := &guest{
		status:  "Package: busybox\nStatus: install ok installed\nVersion: 2\n\nPackage: nginx\nStatus: install ok installed\nVersion: 1\n",
		files:   []kiln.DriftEntry{{Kind: kiln.DriftAdded, Path: "/etc/added.conf"}, {Kind: kiln.DriftDeleted, Path: "/etc/issue.net"}},
		ignored: 3,
		creds:   []kiln.DriftEntry{{Kind: kiln.DriftChanged, Path: "/run/credentials/@system/banner.txt"}},
	}
	d, err := CompareGuest(context.Background(), g, "vm-1", []kiln.Package{{Name: "busybox", Version: "1"}, {Name: "nginx", Version: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]kiln.DriftEntry{}, g.files...), g.creds...)
	if !slices.Equal(d.Files, want) || d.Ignored != 3 {
		t.Errorf("files %+v, ignored %d; want %+v, 3", d.Files, d.Ignored, want)
	}
	if len(d.Packages) != 1 || d.Packages[0].Package != "busybox" || d.Packages[0].From != "1" || d.Packages[0].To != "2" {
		t.Errorf("packages %+v; want busybox changed from 1 to 2", d.Packages)
	}
	if !d.Drifted() {
		t.Error("Drifted() = false")
	}
}
