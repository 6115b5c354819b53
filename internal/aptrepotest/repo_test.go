package aptrepotest

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/advisory"
	"github.com/kiln-project/kiln/debian"
)

func get(t *testing.T, url string) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRepoPublish: the repository serves kiln-demo 1.0-1, then, after
// publishing 1.0-2, an index whose Release digest changed and which
// names both versions; kiln's own parsers read them.
func TestRepoPublish(t *testing.T) {
	r := New(t)
	r.Publish(t, "kiln-demo", "1.0-1")
	rel1 := get(t, r.URL+"/dists/"+Suite+"/Release")
	pk := get(t, r.URL+"/dists/"+Suite+"/"+Component+"/binary-amd64/Packages.gz")
	zr, err := gzip.NewReader(bytes.NewReader(pk))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(plain), "Package: kiln-demo\n") || !strings.Contains(string(plain), "Version: 1.0-1\n") {
		t.Fatalf("Packages after 1.0-1:\n%s", plain)
	}
	ctx := context.Background()
	rel, err := debian.FetchRelease(ctx, nil, r.URL, Suite)
	if err != nil {
		t.Fatalf("kiln cannot read the Release file: %v\n%s", err, rel1)
	}
	installed := []kiln.Package{{Name: "kiln-demo", Version: "1.0-1", Architecture: "all"}}
	if ix, err := debian.FetchIndex(ctx, nil, "", rel, []string{Component}); err != nil || len(ix.Updates(installed)) != 0 {
		t.Fatalf("index before 1.0-2: %v, updates %v", err, ix.Updates(installed))
	}

	r.Publish(t, "kiln-demo", "1.0-2")
	rel2 := get(t, r.URL+"/dists/"+Suite+"/Release")
	if bytes.Equal(rel1, rel2) {
		t.Error("the Release file did not change with the new publication")
	}
	plain = get(t, r.URL+"/dists/"+Suite+"/"+Component+"/binary-all/Packages")
	if !strings.Contains(string(plain), "Version: 1.0-2\n") || !strings.Contains(string(plain), "Version: 1.0-1\n") {
		t.Errorf("Packages after 1.0-2:\n%s", plain)
	}
	rel2p, err := debian.FetchRelease(ctx, nil, r.URL, Suite)
	if err != nil || rel2p.Digest == rel.Digest {
		t.Fatalf("Release after 1.0-2: %v, digest %s (was %s)", err, rel2p.Digest, rel.Digest)
	}
	ix, err := debian.FetchIndex(ctx, nil, "", rel2p, []string{Component})
	if ups := ix.Updates(installed); err != nil || len(ups) != 1 || ups[0].To != "1.0-2" {
		t.Errorf("the packages check sees %v (%v); want kiln-demo 1.0-1 → 1.0-2", ups, err)
	}
	deb := get(t, r.URL+"/pool/"+Component+"/kiln-demo_1.0-2_all.deb")
	if !bytes.HasPrefix(deb, []byte("!<arch>\n")) {
		t.Error("the pool does not serve the .deb")
	}
	if line := r.SourcesLine(); !strings.HasPrefix(line, "deb [trusted=yes] http://127.0.0.1:") || !strings.HasSuffix(line, " kiln main") {
		t.Errorf("sources line %q", line)
	}
}

// TestFeed: the loopback OSV feed serves a record kiln's OSV import reads
// as "kiln-demo fixed in 1.0-2" (high), with an ETag that turns a repeated
// conditional request into 304.
func TestFeed(t *testing.T) {
	f := NewFeed(t, FixedRecord("KILN-DEMO-2026-1", "kiln-demo", "1.0-2", "high"))
	body := get(t, f.URL)
	adv, err := advisory.ParseOSV("record.json", body)
	if err != nil {
		t.Fatalf("kiln's OSV import refuses the record: %v\n%s", err, body)
	}
	if len(adv.Packages) != 1 {
		t.Fatalf("imported %+v", adv)
	}
	p := adv.Packages[0]
	if p.Name != "kiln-demo" || p.Fixed != "1.0-2" || p.Release != "bookworm" || p.Severity != "high" {
		t.Errorf("package entry %+v", p)
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, f.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified || f.Gets() != 2 {
		t.Errorf("conditional request: %s, %d full answers", resp.Status, f.Gets())
	}
}
