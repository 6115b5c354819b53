package overlayfs

import (
	"slices"
	"strings"
	"testing"
)

func TestMountsUnderOrder(t *testing.T) {
	// Listed by creation: /d/a, then /d/a/b inside it, then a second
	// mount over /d/a (hiding b), then /d/c/e created elsewhere and moved
	// under /d/c, which was mounted after it.
	info := `22 1 0:21 / /proc rw - proc proc rw
30 22 0:40 / /d/a rw - tmpfs tmpfs rw
31 30 0:41 / /d/a/b rw - tmpfs tmpfs rw
32 30 0:42 / /d/a rw - tmpfs tmpfs rw
33 35 0:43 / /d/c/e rw - tmpfs tmpfs rw
35 1 0:45 / /d/c rw - tmpfs tmpfs rw
36 1 0:46 / /d/with\040space rw - tmpfs tmpfs rw
37 1 0:47 / /dd rw - tmpfs tmpfs rw
`
	got, err := mountsUnder(strings.NewReader(info), "/d/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/d/c/e", "/d/a/b", "/d/with space", "/d/c", "/d/a", "/d/a"}
	if !slices.Equal(got, want) {
		t.Fatalf("mountsUnder = %q, want %q (children first, the top of a stack first)", got, want)
	}
	// The two /d/a mounts: the later (top) one is listed first.
	if got, _ := mountsUnder(strings.NewReader(info), "/d/a"); !slices.Equal(got, []string{"/d/a/b", "/d/a", "/d/a"}) {
		t.Errorf("mountsUnder(/d/a) = %q", got)
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a\040b`: "/tmp/a b",
		`/plain`:      "/plain",
		`/x\134y`:     `/x\y`,
		`/bad\09`:     `/bad\09`,
		`/end\04`:     `/end\04`,
		`/tab\011`:    "/tab\t",
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
