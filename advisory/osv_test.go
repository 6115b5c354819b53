package advisory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kiln-project/kiln"
)

func readTestdata(t *testing.T, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseOSV(t *testing.T) {
	a, err := ParseOSV("DSA-9001-1.json", readTestdata(t, "osv/DSA-9001-1.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := &kiln.Advisory{
		ID: "DSA-9001-1", Source: kiln.AdvisoryOSV,
		Aliases: []string{"CVE-2099-0001", "CVE-2099-0002"},
		Summary: "openssl - security update", Details: "Two flaws were found in OpenSSL.",
		URL:       "https://www.debian.org/security/2099/dsa-9001",
		Published: time.Date(2099, 1, 2, 0, 0, 0, 0, time.UTC),
		Modified:  time.Date(2099, 1, 3, 10, 11, 12, 5e8, time.UTC),
		Packages: []kiln.AffectedPackage{
			// Events are sorted by version before they are read: the
			// fixed-before-introduced order in the file does not matter.
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "openssl", Fixed: "3.0.11-1~deb12u2", Status: kiln.AffectedFixed, Severity: "high"},
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "openssl", Introduced: "3.1.0-1", Fixed: "3.1.4-2", Status: kiln.AffectedFixed, Severity: "high"},
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "openssl", Introduced: "3.2.0-1", Status: kiln.AffectedOpen, Severity: "high"},
			{Ecosystem: "Debian:11", Release: "bullseye", Name: "openssl", Fixed: "1.1.1w-0+deb11u1", Status: kiln.AffectedFixed},
		},
	}
	if d := cmp.Diff(want, a); d != "" {
		t.Errorf("ParseOSV (-want +got):\n%s", d)
	}

	b, err := ParseOSV("DLA-9002-1.json", readTestdata(t, "osv/DLA-9002-1.json"))
	if err != nil {
		t.Fatal(err)
	}
	wantPkgs := []kiln.AffectedPackage{{
		Ecosystem: "Debian:12", Release: "bookworm", Name: "zlib",
		Introduced: "1:1.2.13.dfsg-1", LastAffected: "1:1.2.13.dfsg-1+b1", Status: kiln.AffectedOpen,
		Severity: "CVSS_V3:CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
	}}
	if d := cmp.Diff(wantPkgs, b.Packages); d != "" {
		t.Errorf("npm and GIT entries must be left out (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"CVE-2099-0100"}, b.Related); d != "" {
		t.Errorf("related: %s", d)
	}
}

func TestParseOSVMalformed(t *testing.T) {
	tests := []struct {
		file  string
		field string // the error's field: file:line:col: path
		msg   string // part of the message
	}{
		{"bad-fixed-version.json", "bad-fixed-version.json:1:194: affected[0].ranges[0].events[1].fixed", "revision number is empty"},
		{"number-version.json", "number-version.json:6:81: affected[0].ranges[0].events[1].fixed", "is a number"},
		{"no-id.json", "no-id.json:1:1: id", "missing"},
		{"syntax.json", "syntax.json:5:57: affected[0]", "syntax error"},
		{"duplicate-key.json", "duplicate-key.json:1:17: id", "appears twice"},
		{"bad-time.json", "bad-time.json:1:29: modified", "RFC 3339"},
		{"two-key-event.json", "two-key-event.json:1:163: affected[0].ranges[0].events[0]", "exactly one"},
		{"not-debian.json", "not-debian.json:1:1: affected", "no package in a Debian ecosystem"},
		{"trailing.json", "trailing.json:1:190", "after the JSON value"},
		{"truncated.json", "truncated.json:1:", "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := ParseOSV(tt.file, readTestdata(t, "malformed/"+tt.file))
			if err == nil {
				t.Fatal("accepted")
			}
			if kiln.ErrorCode(err) != kiln.EINVALID {
				t.Errorf("code = %q, want invalid (%v)", kiln.ErrorCode(err), err)
			}
			if f := kiln.ErrorField(err); !strings.HasPrefix(f, tt.field) {
				t.Errorf("field = %q, want %q", f, tt.field)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
		})
	}
}

func FuzzParseOSV(f *testing.F) {
	for _, p := range []string{"osv/DSA-9001-1.json", "osv/DLA-9002-1.json", "malformed/syntax.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseOSV("fuzz.json", data)
		if err != nil {
			if kiln.ErrorField(err) == "" && kiln.ErrorCode(err) != kiln.EINVALID {
				t.Fatalf("error without a location: %v", err)
			}
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("accepted an advisory that does not validate: %v", err)
		}
	})
}
