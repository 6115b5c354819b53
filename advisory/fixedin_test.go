package advisory

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kiln-project/kiln"
)

func TestParseFixedIn(t *testing.T) {
	tests := []struct {
		in   []string
		want []kiln.VersionRef
		bad  bool
	}{
		{[]string{"basic-linux-2"}, []kiln.VersionRef{{Image: "basic-linux", Number: 2}}, false},
		{[]string{"basic-linux-2,appserver-3 container-node-2"}, []kiln.VersionRef{{Image: "basic-linux", Number: 2}, {Image: "appserver", Number: 3}, {Image: "container-node", Number: 2}}, false},
		{[]string{"basic-linux-2,", "appserver-3"}, []kiln.VersionRef{{Image: "basic-linux", Number: 2}, {Image: "appserver", Number: 3}}, false},
		{[]string{"basic-linux-2", "basic-linux-3"}, nil, true},
		{[]string{"basic-linux"}, nil, true},
		{[]string{"basic-linux-0"}, nil, true},
		{[]string{"Basic-2"}, nil, true},
		{[]string{" , "}, nil, true},
		{nil, nil, true},
	}
	for _, tt := range tests {
		got, err := ParseFixedIn("fixed-in", tt.in...)
		if (err != nil) != tt.bad {
			t.Errorf("ParseFixedIn(%q) error = %v, want bad=%v", tt.in, err, tt.bad)
			continue
		}
		if err != nil {
			if kiln.ErrorField(err) != "fixed-in" {
				t.Errorf("ParseFixedIn(%q) field %q", tt.in, kiln.ErrorField(err))
			}
			continue
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("ParseFixedIn(%q) (-want +got):\n%s", tt.in, d)
		}
	}
}

func TestExposed(t *testing.T) {
	fixedIn := []kiln.VersionRef{{Image: "basic-linux", Number: 2}, {Image: "appserver", Number: 3}, {Image: "container-node", Number: 2}}
	tests := []struct {
		v       kiln.VersionRef
		exposed bool
		fix     kiln.VersionRef
	}{
		{kiln.VersionRef{Image: "basic-linux", Number: 1}, true, fixedIn[0]},
		{kiln.VersionRef{Image: "basic-linux", Number: 2}, false, fixedIn[0]},
		{kiln.VersionRef{Image: "basic-linux", Number: 10}, false, fixedIn[0]},
		{kiln.VersionRef{Image: "appserver", Number: 2}, true, fixedIn[1]},
		{kiln.VersionRef{Image: "container-node", Number: 3}, false, fixedIn[2]},
		{kiln.VersionRef{Image: "webserver", Number: 1}, false, kiln.VersionRef{}},
		{kiln.VersionRef{Image: "basic-linux-extra", Number: 1}, false, kiln.VersionRef{}},
	}
	for _, tt := range tests {
		exposed, fix := Exposed(fixedIn, tt.v)
		if exposed != tt.exposed || fix != tt.fix {
			t.Errorf("Exposed(%s) = %v, %v; want %v, %v", tt.v, exposed, fix, tt.exposed, tt.fix)
		}
	}
}

func TestFirstFixed(t *testing.T) {
	adv := &kiln.Advisory{ID: "DSA-9001-1", Source: kiln.AdvisoryOSV, Packages: []kiln.AffectedPackage{
		{Release: "bookworm", Name: "openssl", Fixed: "3.0.11-1~deb12u2", Status: kiln.AffectedFixed},
	}}
	v := func(n int, openssl string) VersionManifest {
		m := VersionManifest{Version: kiln.VersionRef{Image: "basic-linux", Number: n}, Release: "bookworm",
			Packages: []kiln.Package{{Name: "bash", Version: "5.2.15-2+b2"}}}
		if openssl != "" {
			m.Packages = append(m.Packages, kiln.Package{Name: "libssl3", Version: openssl})
			m.Sources = Sources{"libssl3": {Name: "openssl"}}
		}
		return m
	}
	tests := []struct {
		name     string
		versions []VersionManifest
		want     int // 0: no fixed version
	}{
		{"fixed in 3", []VersionManifest{v(1, "3.0.9-1"), v(2, "3.0.11-1~deb12u1"), v(3, "3.0.11-1~deb12u2"), v(4, "3.0.13-1~deb12u1")}, 3},
		{"not fixed yet", []VersionManifest{v(1, "3.0.9-1"), v(2, "3.0.11-1~deb12u1")}, 0},
		{"regression counts", []VersionManifest{v(1, "3.0.9-1"), v(2, "3.0.11-1~deb12u2"), v(3, "3.0.9-1"), v(4, "3.0.11-1~deb12u2")}, 4},
		{"never affected", []VersionManifest{v(5, "3.0.11-1~deb12u2"), v(6, "")}, 5},
		{"package removed", []VersionManifest{v(1, "3.0.9-1"), v(2, "")}, 2},
		{"empty", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := FirstFixed(adv, tt.versions)
			if err != nil {
				t.Fatal(err)
			}
			if ok != (tt.want != 0) || (ok && got.Number != tt.want) {
				t.Errorf("FirstFixed = %v, %v; want %d", got, ok, tt.want)
			}
		})
	}
	_, _, err := FirstFixed(adv, []VersionManifest{v(2, ""), v(1, "")})
	if kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("out of order: %v", err)
	}
	other := v(3, "")
	other.Version.Image = "appserver"
	if _, _, err := FirstFixed(adv, []VersionManifest{v(2, ""), other}); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("two image lines: %v", err)
	}
}
