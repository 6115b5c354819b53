package oci

import (
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in         string
		host, repo string
		loopback   bool
		err        string
	}{
		{in: "oci://127.0.0.1:5000/kiln", host: "127.0.0.1:5000", repo: "kiln", loopback: true},
		{in: "oci://localhost/team/kiln/", host: "localhost", repo: "team/kiln", loopback: true},
		{in: "oci://[::1]:5000/kiln", host: "[::1]:5000", repo: "kiln", loopback: true},
		{in: "oci://registry.example.com/kiln", host: "registry.example.com", repo: "kiln"},
		{in: "oci://10.0.0.7:5000/kiln", host: "10.0.0.7:5000", repo: "kiln"},
		{in: "https://registry.example.com/kiln", err: "does not start with oci://"},
		{in: "oci:///kiln", err: "host is missing"},
		{in: "oci://registry.example.com", err: "repository is missing"},
		{in: "oci://registry.example.com/kiln:3", err: "has a tag or digest"},
		{in: "oci://registry.example.com/Kiln", err: "not a valid repository name"},
		{in: "oci://bad host/kiln", err: "is not HOST or HOST:PORT"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			loc, err := ParseURL("artifacts", tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || kiln.ErrorCode(err) != kiln.EINVALID || kiln.ErrorField(err) != "artifacts" {
					t.Fatalf("ParseURL(%q) = %v, want an invalid artifacts error with %q", tc.in, err, tc.err)
				}
				if !strings.Contains(err.Error(), "oci://HOST[:PORT]/REPOSITORY") {
					t.Errorf("error %q does not say what to write", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if loc.Host != tc.host || loc.Repository != tc.repo || loc.Loopback() != tc.loopback {
				t.Errorf("ParseURL(%q) = %+v loopback %v, want %s %s %v", tc.in, loc, loc.Loopback(), tc.host, tc.repo, tc.loopback)
			}
		})
	}
}

func TestSemVerTag(t *testing.T) {
	if got := SemVerTag("1.0.4+20200229"); got != "1.0.4_20200229" {
		t.Errorf("SemVerTag = %q", got)
	}
	v := &Version{Image: "app", Number: 1, SemVer: "1.0/4", Layers: []Layer{{Digest: "sha256:" + strings.Repeat("a", 64)}}}
	if err := v.validate(); kiln.ErrorCode(err) != kiln.EINVALID || kiln.ErrorField(err) != "semver" {
		t.Errorf("validate with a bad semver = %v", err)
	}
}

func TestParseImageRef(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in              string
		loc, image, ref string
		err             string
	}{
		{in: "oci://127.0.0.1:5000/kiln/appserver:3", loc: "oci://127.0.0.1:5000/kiln", image: "appserver", ref: "3"},
		{in: "oci://registry.example.com/team/kiln/basic-linux:1.0.4_build.2", loc: "oci://registry.example.com/team/kiln", image: "basic-linux", ref: "1.0.4_build.2"},
		{in: "oci://localhost:5000/kiln/appserver@" + d, loc: "oci://localhost:5000/kiln", image: "appserver", ref: d},
		{in: "oci://127.0.0.1:5000/kiln/appserver", err: "the version is missing"},
		{in: "oci://127.0.0.1:5000/appserver:3", err: "are not oci://HOST[:PORT]/REPOSITORY"},
		{in: "oci://127.0.0.1:5000/kiln/appserver@sha256:12", err: "is not sha256:<64 hex digits>"},
		{in: "oci://127.0.0.1:5000/kiln/App:3", err: "is not allowed"},
		{in: "oci://127.0.0.1:5000/kiln/appserver:", err: "is not a version number or a semver tag"},
		{in: "https://127.0.0.1:5000/kiln/appserver:3", err: "does not start with oci://"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseImageRef("version", tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || kiln.ErrorField(err) != "version" || !strings.Contains(err.Error(), "oci://HOST[:PORT]/REPOSITORY/IMAGE:N") {
					t.Fatalf("ParseImageRef(%q) = %+v, %v; want an error with %q that says what to write", tc.in, r, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Location.String() != tc.loc || r.Image != tc.image || r.Reference != tc.ref || r.String() != tc.in {
				t.Errorf("ParseImageRef(%q) = %+v (%s)", tc.in, r, r)
			}
		})
	}
}
