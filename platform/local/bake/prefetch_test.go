package bake

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseURIs(t *testing.T) {
	out := []byte(`'http://deb.debian.org/debian/pool/main/g/glibc/libc6_2.36-9%2bdeb12u14_amd64.deb' libc6_2.36-9+deb12u14_amd64.deb 2759320 SHA256:0123abcd
W: a warning apt printed
'http://m/x/../evil.deb' ../evil.deb 10 SHA256:00
`)
	got, err := parseURIs(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].name != "libc6_2.36-9+deb12u14_amd64.deb" || got[0].size != 2759320 || got[0].hash != "SHA256:0123abcd" || !strings.HasPrefix(got[0].url, "http://deb.debian.org/") {
		t.Fatalf("parsed %+v; want libc6 only (a name with a slash is refused)", got)
	}
	if _, err := parseURIs([]byte("'http://m/a.deb' a.deb many SHA256:00\n")); err == nil {
		t.Error("a size that is not a number was taken")
	}
}

func TestPrefetchPatterns(t *testing.T) {
	p := &Prefetch{Suite: "bookworm", Variant: "minbase", Include: []string{"systemd-sysv"}}
	got := p.patterns("amd64")
	want := []string{
		"?narrow(?or(?archive(^bookworm$),?codename(^bookworm$)),?architecture(amd64),?essential)",
		"?narrow(?or(?archive(^bookworm$),?codename(^bookworm$)),?architecture(amd64),?priority(required))",
		"apt", "systemd-sysv",
	}
	if !slices.Equal(got, want) {
		t.Errorf("minbase patterns %q, want %q", got, want)
	}
	if (&Prefetch{Suite: "bookworm", Variant: "buildd"}).patterns("amd64") != nil {
		t.Error("a variant Prefetch does not know must be left to apt")
	}
}

// fetchDeb keeps a package only when it has the size and hash the lists
// give, under its name, written through a temporary name.
func TestFetchDeb(t *testing.T) {
	body := []byte("a package's bytes")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
	defer srv.Close()
	sum := sha256.Sum256(body)
	good := "SHA256:" + hex.EncodeToString(sum[:])
	dir := t.TempDir()
	ctx := t.Context()
	if err := fetchDeb(ctx, srv.Client(), debURI{url: srv.URL + "/a.deb", name: "a.deb", size: int64(len(body)), hash: good}, dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a.deb")); err != nil || string(b) != string(body) {
		t.Fatalf("a.deb: %q, %v", b, err)
	}
	for _, bad := range []debURI{
		{url: srv.URL + "/b.deb", name: "b.deb", size: int64(len(body)), hash: "SHA256:" + strings.Repeat("0", 64)},
		{url: srv.URL + "/c.deb", name: "c.deb", size: int64(len(body)) - 1, hash: good},
		{url: srv.URL + "/d.deb", name: "d.deb", size: int64(len(body)), hash: "CRC32:00"},
	} {
		if err := fetchDeb(ctx, srv.Client(), bad, dir); err == nil {
			t.Errorf("%s: fetched without error", bad.name)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("the cache holds %d files; want a.deb only (nothing of the refused ones)", len(ents))
	}
}
