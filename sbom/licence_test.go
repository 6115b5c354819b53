package sbom

import (
	"errors"
	"github.com/kiln-project/kiln/internal/ci"
	"os"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/debian"
)

func TestSPDXExpression(t *testing.T) {
	for in, want := range map[string]string{
		"GPL-2+":                               "GPL-2.0-or-later",
		"Expat":                                "MIT",
		"GPL-1+ or Artistic":                   "GPL-1.0-or-later OR Artistic-1.0-Perl",
		"LGPL-2.1+ and BSD-3-clause":           "LGPL-2.1-or-later AND BSD-3-Clause",
		"GPL-2+ with OpenSSL exception":        "LicenseRef-GPL-2-with-OpenSSL-exception",
		"public-domain":                        "LicenseRef-public-domain",
		"GPL-2+ or LGPL-2.1+ and BSD-2-clause": "GPL-2.0-or-later OR (LGPL-2.1-or-later AND BSD-2-Clause)",
	} {
		if got := spdxExpression(in); got != want {
			t.Errorf("spdxExpression(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestParseCopyright(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
		notDEP5          bool
	}{
		{name: "dep5", file: `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: bash

Files: *
Copyright: 1987-2022 Free Software Foundation, Inc.
License: GPL-3+

Files: lib/sh/strtoimax.c
Copyright: 2002 Free Software Foundation
License: GPL-2+ or
 Artistic
Comment: the continuation is not part of the short name

License: GPL-3+
 This program is free software ...
 .
 On Debian systems ...
`, want: "GPL-2.0-or-later AND GPL-3.0-or-later"},
		{name: "header licence", file: "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nLicense: Zlib\n", want: "Zlib"},
		{name: "free-form", file: "This is the Debian prepackaged version of foo.\n\nCopyright (C) 1999 Someone\n\nLicense: GPL\n", notDEP5: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCopyright([]byte(tc.file))
			if tc.notDEP5 {
				if !errors.Is(err, errNotDEP5) {
					t.Fatalf("got %q, %v; want errNotDEP5", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestReadLicensesHost reads the host's own copyright files, a real
// Debian root filesystem, and reports how many are machine-readable.
func TestReadLicensesHost(t *testing.T) {
	f, err := os.Open("/var/lib/dpkg/status")
	if err != nil {
		ci.SkipOrFail(t, "no dpkg status on this host: "+err.Error())
	}
	defer f.Close()
	var pkgs []kiln.Package
	_ = debian.ScanParagraphs(f, []string{"Package", "Status"}, func(p debian.Paragraph) error {
		if p["Status"] == "install ok installed" {
			pkgs = append(pkgs, kiln.Package{Name: p["Package"]})
		}
		return nil
	})
	lic, st, err := ReadLicenses("/", pkgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d packages: %d licensed (DEP-5), %d free-form, %d without a copyright file", len(pkgs), st.Licensed, st.NotMachineReadable, st.Missing)
	if st.Licensed == 0 || len(lic) != st.Licensed {
		t.Errorf("no licence read from the host's copyright files (%+v)", st)
	}
	// Every licence expression the host's files give must make a valid
	// document in both formats.
	schemas := compileSchemas(t)
	v := testVersion(10)
	for name := range lic {
		v.Provenance.Packages = append(v.Provenance.Packages, kiln.Package{Name: name, Version: "1", Architecture: "amd64"})
	}
	for _, f := range Formats {
		b, st, err := Generate(v, f, Options{Licenses: lic})
		if err != nil {
			t.Fatal(err)
		}
		validate(t, schemas[f], b)
		t.Logf("%s: %d bytes, %d licensed, %d NOASSERTION", f, len(b), st.Licensed, st.NoAssertion)
	}
}
