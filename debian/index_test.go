package debian

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-project/kiln"
)

const packages = "Package: openssl\nVersion: 3.0.11-1~deb12u2\nArchitecture: %[1]s\n\n" +
	"Package: openssl\nVersion: 3.0.13-1~deb12u1\nArchitecture: %[1]s\nDescription: newer\n\n" +
	"Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n"

func TestPackageIndexUpdates(t *testing.T) {
	ix := PackageIndex{}
	if err := ParsePackages(strings.NewReader(fmt.Sprintf(packages, "amd64")), ix); err != nil {
		t.Fatal(err)
	}
	if want := (PackageIndex{"openssl:amd64": "3.0.13-1~deb12u1", "tzdata:all": "2024a-0+deb12u1"}); !cmp.Equal(ix, want) {
		t.Fatalf("index %v, want %v (the highest version of each)", ix, want)
	}
	got := ix.Updates([]kiln.Package{
		{Name: "tzdata", Version: "2024a-0+deb12u1", Architecture: "all"},
		{Name: "openssl", Version: "3.0.11-1~deb12u2", Architecture: "amd64"},
		{Name: "openssl", Version: "3.0.11-1~deb12u2", Architecture: "arm64"},
	})
	if want := []PackageUpdate{{Name: "openssl", From: "3.0.11-1~deb12u2", To: "3.0.13-1~deb12u1"}}; !cmp.Equal(got, want) {
		t.Errorf("updates %v, want %v", got, want)
	}
}

// A mirror served by httptest: FetchRelease falls back from InRelease to
// Release, FetchIndex reads every component, and a second FetchIndex of
// the same snapshot comes from the cache.
func TestFetchReleaseAndIndex(t *testing.T) {
	var hits atomic.Int32
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	fmt.Fprintf(zw, packages, Arch())
	zw.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/debian/dists/bookworm/Release":
			fmt.Fprint(w, "Origin: Debian\nDate: Sat, 10 Jan 2026 10:21:43 UTC\n")
		case "/debian/dists/bookworm/main/binary-" + Arch() + "/Packages.gz":
			hits.Add(1)
			w.Write(gz.Bytes())
		case "/debian/dists/bookworm/contrib/binary-" + Arch() + "/Packages.gz":
			hits.Add(1)
			zw := gzip.NewWriter(w)
			fmt.Fprint(zw, "Package: extra\nVersion: 1\nArchitecture: all\n")
			zw.Close()
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := t.Context()
	rel, err := FetchRelease(ctx, srv.Client(), srv.URL+"/debian/", "bookworm")
	if err != nil {
		t.Fatal(err)
	}
	if rel.URL != srv.URL+"/debian/dists/bookworm/Release" || !strings.HasPrefix(rel.Digest, "sha256:") || rel.Date.Year() != 2026 {
		t.Fatalf("release %+v", rel)
	}
	cache := t.TempDir()
	for range 2 {
		ix, err := FetchIndex(ctx, srv.Client(), cache, rel, []string{"main", "contrib"})
		if err != nil {
			t.Fatal(err)
		}
		if ix["openssl:"+Arch()] != "3.0.13-1~deb12u1" || ix["extra:all"] != "1" {
			t.Fatalf("index %v", ix)
		}
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("%d index downloads, want 2 (one a component; the second fetch reads the cache)", n)
	}
	if _, err := FetchIndex(ctx, srv.Client(), "", rel, []string{"non-free"}); kiln.ErrorCode(err) != kiln.EUNAVAILABLE {
		t.Errorf("a missing component: %v, want EUNAVAILABLE", err)
	}
}
