package advisory

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kiln-project/kiln"
)

// opensslAdv is fixed in bookworm at 3.0.11-1~deb12u2, re-broken from
// 3.1.0-1 to 3.1.4-2, open from 3.2.0-1; never affected in trixie; open in
// bullseye up to a last affected version.
var opensslAdv = &kiln.Advisory{
	ID: "DSA-9001-1", Source: kiln.AdvisoryOSV,
	Packages: []kiln.AffectedPackage{
		{Release: "bookworm", Name: "openssl", Fixed: "3.0.11-1~deb12u2", Status: kiln.AffectedFixed, Severity: "high"},
		{Release: "bookworm", Name: "openssl", Introduced: "3.1.0-1", Fixed: "3.1.4-2", Status: kiln.AffectedFixed},
		{Release: "bookworm", Name: "openssl", Introduced: "3.2.0-1", Status: kiln.AffectedOpen},
		{Release: "trixie", Name: "openssl", Status: kiln.AffectedNotAffected},
		{Release: "bullseye", Name: "openssl", LastAffected: "1.1.1w-0+deb11u1", Status: kiln.AffectedOpen},
		{Release: "sid", Name: "openssl", Status: kiln.AffectedUndetermined},
		{Name: "zlib", Introduced: "1:1.2.13.dfsg-1", Fixed: "1:1.3.dfsg-1", Status: kiln.AffectedFixed}, // every release
	},
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name, release, version string
		affected               bool
		reason                 string
	}{
		{"below fix", "bookworm", "3.0.9-1", true, "3.0.9-1 < fixed 3.0.11-1~deb12u2"},
		{"tilde before fix", "12", "3.0.11-1~deb12u1", true, "3.0.11-1~deb12u1 < fixed 3.0.11-1~deb12u2"},
		{"at fix", "Debian:12", "3.0.11-1~deb12u2", false, "3.0.11-1~deb12u2 ≥ fixed 3.0.11-1~deb12u2"},
		{"binNMU of fix", "bookworm", "3.0.11-1~deb12u2+b1", false, "3.0.11-1~deb12u2+b1 ≥ fixed 3.0.11-1~deb12u2"},
		{"between ranges", "bookworm", "3.0.20-1", false, "3.0.20-1 ≥ fixed 3.0.11-1~deb12u2"},
		{"second range", "bookworm", "3.1.2-1", true, "3.1.2-1 < fixed 3.1.4-2"},
		{"second range fixed", "bookworm", "3.1.4-2", false, "3.1.4-2 ≥ fixed 3.0.11-1~deb12u2"},
		{"open range", "bookworm", "3.2.1-1", true, "no fix for openssl in bookworm yet"},
		{"epoch beats all", "bookworm", "1:0.1-1", true, "no fix for openssl in bookworm yet"},
		{"not affected release", "trixie", "3.0.1-1", false, "openssl in trixie was never affected"},
		{"last affected", "bullseye", "1.1.1w-0+deb11u1", true, "1.1.1w-0+deb11u1 ≤ last affected 1.1.1w-0+deb11u1, no fix yet"},
		{"after last affected", "bullseye", "1.1.1w-0+deb11u2", false, "1.1.1w-0+deb11u2 > last affected 1.1.1w-0+deb11u1"},
		{"undetermined", "unstable", "3.3.0-1", true, "the advisory has not determined whether openssl in sid is affected; treated as affected"},
		{"bad installed version", "bookworm", "3.0-", true, `installed version cannot be compared ("3.0-" is not a Debian version: revision number is empty); check it by hand`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := Match(opensslAdv, tt.release, []kiln.Package{{Name: "openssl", Version: tt.version}, {Name: "bash", Version: "5.2.15-2+b2"}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(fs) != 1 {
				t.Fatalf("got %d findings, want 1: %+v", len(fs), fs)
			}
			f := fs[0]
			if f.Affected != tt.affected || f.Reason != tt.reason || f.Package != "openssl" || f.Installed != tt.version {
				t.Errorf("got %+v, want affected=%v reason %q", f, tt.affected, tt.reason)
			}
		})
	}
}

func TestMatchReleaseAndSources(t *testing.T) {
	pkgs := []kiln.Package{
		{Name: "libssl3", Version: "3.0.9-1", Architecture: "amd64"},
		{Name: "openssl", Version: "3.0.9-1", Architecture: "amd64"},
		{Name: "zlib1g", Version: "1:1.2.13.dfsg-1+b1", Architecture: "amd64"},
		{Name: "libfoo1", Version: "2.0-1+b3"},
	}
	// Without sources only the binary named like its source matches.
	fs, err := Match(opensslAdv, "bookworm", pkgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Package != "openssl" {
		t.Errorf("without sources: %+v", fs)
	}
	sources := Sources{
		"libssl3": {Name: "openssl"},
		"zlib1g":  {Name: "zlib", Version: "1:1.2.13.dfsg-1"},
		"libfoo1": {Name: "openssl", Version: "3.0.11-1~deb12u2"}, // its own source version decides
	}
	fs, err = Match(opensslAdv, "bookworm", pkgs, sources)
	if err != nil {
		t.Fatal(err)
	}
	want := []Finding{
		{Advisory: "DSA-9001-1", Package: "libssl3", Source: "openssl", Installed: "3.0.9-1", Fixed: "3.0.11-1~deb12u2", Affected: true, Status: kiln.AffectedFixed, Severity: "high", Reason: "3.0.9-1 < fixed 3.0.11-1~deb12u2"},
		{Advisory: "DSA-9001-1", Package: "openssl", Source: "openssl", Installed: "3.0.9-1", Fixed: "3.0.11-1~deb12u2", Affected: true, Status: kiln.AffectedFixed, Severity: "high", Reason: "3.0.9-1 < fixed 3.0.11-1~deb12u2"},
		{Advisory: "DSA-9001-1", Package: "zlib1g", Source: "zlib", Installed: "1:1.2.13.dfsg-1", Fixed: "1:1.3.dfsg-1", Affected: true, Status: kiln.AffectedFixed, Reason: "1:1.2.13.dfsg-1 < fixed 1:1.3.dfsg-1"},
		{Advisory: "DSA-9001-1", Package: "libfoo1", Source: "openssl", Installed: "3.0.11-1~deb12u2", Fixed: "3.0.11-1~deb12u2", Status: kiln.AffectedFixed, Severity: "high", Reason: "3.0.11-1~deb12u2 ≥ fixed 3.0.11-1~deb12u2"},
	}
	if d := cmp.Diff(want, fs); d != "" {
		t.Errorf("with sources (-want +got):\n%s", d)
	}
	if got := Affected(fs); len(got) != 3 {
		t.Errorf("Affected kept %d, want 3", len(got))
	}

	// zlib applies to every release; openssl entries only to bookworm.
	fs, _ = Match(opensslAdv, "bullseye", pkgs[2:3], sources)
	if len(fs) != 1 || !fs[0].Affected {
		t.Errorf("release-less entry in bullseye: %+v", fs)
	}
	fs, _ = Match(opensslAdv, "buster", pkgs[:2], sources)
	if len(fs) != 0 {
		t.Errorf("buster has no openssl entry: %+v", fs)
	}
}

func TestMatchRefusals(t *testing.T) {
	if _, err := Match(opensslAdv, "", nil, nil); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("empty release: %v", err)
	}
	bad := &kiln.Advisory{ID: "X-1", Source: kiln.AdvisoryManual, Packages: []kiln.AffectedPackage{{Name: "a", Fixed: "1.0-", Status: kiln.AffectedFixed}}}
	_, err := Match(bad, "bookworm", nil, nil)
	if kiln.ErrorField(err) != "X-1: packages[0].fixed" {
		t.Errorf("bad fixed version: field %q (%v)", kiln.ErrorField(err), err)
	}
	withdrawn := *opensslAdv
	withdrawn.Withdrawn = withdrawn.Modified.AddDate(1, 0, 0)
	fs, err := Match(&withdrawn, "bookworm", []kiln.Package{{Name: "openssl", Version: "1.0-1"}}, nil)
	if err != nil || len(fs) != 0 {
		t.Errorf("withdrawn advisory matched: %+v %v", fs, err)
	}
}

func TestMatchImportedRecords(t *testing.T) {
	advs, err := ImportPath(t.Context(), "testdata/tracker/tracker.json")
	if err != nil {
		t.Fatal(err)
	}
	ix, err := NewIndex(advs, "bookworm")
	if err != nil {
		t.Fatal(err)
	}
	fs := ix.Match([]kiln.Package{{Name: "openssl", Version: "3.0.9-1"}, {Name: "openssl1.0", Version: "1.0.2u-1~deb9u7"}}, nil)
	var got []string
	for _, f := range fs {
		got = append(got, f.Advisory+" "+f.Package+" "+f.Reason)
	}
	want := []string{
		"CVE-2099-0001 openssl 3.0.9-1 < fixed 3.0.11-1~deb12u2",
		"CVE-2099-0003 openssl openssl in bookworm was never affected",
		"CVE-2099-0001 openssl1.0 the advisory has not determined whether openssl1.0 in bookworm is affected; treated as affected",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestParseDpkgSource(t *testing.T) {
	tests := []struct {
		binary, field string
		want          SourceRef
		bad           bool
	}{
		{"openssl", "", SourceRef{Name: "openssl"}, false},
		{"libssl3", "openssl", SourceRef{Name: "openssl"}, false},
		{"libssl3", "openssl (3.0.11-1~deb12u2)", SourceRef{Name: "openssl", Version: "3.0.11-1~deb12u2"}, false},
		{"x", "openssl 3.0", SourceRef{}, true},
		{"x", "openssl (3.0-)", SourceRef{}, true},
	}
	for _, tt := range tests {
		got, err := ParseDpkgSource(tt.binary, tt.field)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseDpkgSource(%q, %q) = %+v, %v", tt.binary, tt.field, got, err)
		}
	}
}

func TestRelease(t *testing.T) {
	for in, want := range map[string]string{
		"bookworm": "bookworm", "12": "bookworm", "Debian:12": "bookworm", "debian-12": "bookworm",
		"12.5": "bookworm", "unstable": "sid", "SID": "sid", "Debian:99": "99", "": "",
	} {
		if got := Release(in); got != want {
			t.Errorf("Release(%q) = %q, want %q", in, got, want)
		}
	}
}
