package debian

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-project/kiln/internal/ci"
)

func collect(t *testing.T, in string, keep ...string) []Paragraph {
	t.Helper()
	var out []Paragraph
	err := ScanParagraphs(strings.NewReader(in), keep, func(p Paragraph) error {
		cp := Paragraph{}
		for k, v := range p {
			cp[k] = v
		}
		out = append(out, cp)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestScanParagraphs(t *testing.T) {
	in := `Package: libssl3
Status: install ok installed
Source: openssl (3.0.11-1~deb12u2)
Version: 3.0.11-1~deb12u2+b1
Architecture: amd64
Description: Secure Sockets Layer toolkit
 This package is part of the OpenSSL project.
 .
 Version: not a field

Package: hello
Version: 2.10-3
Architecture: amd64
` + "\t\n" + `Package: tzdata
Version: 2024a-0+deb12u1
Architecture: all`
	got := collect(t, in, "Package", "Version", "Architecture", "Source")
	want := []Paragraph{
		{"Package": "libssl3", "Source": "openssl (3.0.11-1~deb12u2)", "Version": "3.0.11-1~deb12u2+b1", "Architecture": "amd64"},
		{"Package": "hello", "Version": "2.10-3", "Architecture": "amd64"},
		{"Package": "tzdata", "Version": "2024a-0+deb12u1", "Architecture": "all"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("paragraphs (-want +got):\n%s", d)
	}
	if all := collect(t, in); all[0]["Description"] != "Secure Sockets Layer toolkit" || all[0]["Status"] != "install ok installed" {
		t.Errorf("every field without keep: %v", all[0])
	}
	// Paragraphs with none of the kept fields are not reported.
	if got := collect(t, "Foo: bar\n\nPackage: a\n", "Package"); len(got) != 1 {
		t.Errorf("got %v, want only the paragraph with Package", got)
	}
}

func TestScanParagraphsStopsAtError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := ScanParagraphs(strings.NewReader("Package: a\n\nPackage: b\n"), nil, func(Paragraph) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("ScanParagraphs returned %v after %d paragraphs, want stop after 1", err, n)
	}
}

// The host's own dpkg status file parses into as many installed packages
// as dpkg-query lists.
func TestScanParagraphsHostStatus(t *testing.T) {
	f, err := os.Open("/var/lib/dpkg/status")
	if err != nil {
		ci.SkipOrFail(t, "no dpkg status file on this machine (/var/lib/dpkg/status); run on Debian")
	}
	defer f.Close()
	n := 0
	err = ScanParagraphs(f, []string{"Package", "Status"}, func(p Paragraph) error {
		if p["Package"] == "" {
			t.Errorf("paragraph without Package: %v", p)
		}
		n++
		return nil
	})
	if err != nil || n < 10 {
		t.Errorf("host status: %d paragraphs, %v", n, err)
	}
}
