package kiln

import (
	"strings"
	"testing"
)

func TestLayerList(t *testing.T) {
	d := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	ls := []Layer{
		{Digest: d("a"), DiffID: d("a"), Size: 10, MediaType: LayerMediaTypeTar},
		{Digest: d("b"), DiffID: d("c"), Size: 5, MediaType: LayerMediaTypeGzip},
	}
	b, err := EncodeLayerList(ls)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := EncodeLayerList(ls)
	if string(b) != string(again) || !strings.HasPrefix(string(b), `{"schemaVersion":1,"mediaType":"application/vnd.kiln.layers.v1+json","layers":[{"digest":`) {
		t.Errorf("layer list %s", b)
	}
	got, err := DecodeLayerList(b)
	if err != nil || len(got) != 2 || got[1] != ls[1] {
		t.Fatalf("DecodeLayerList = %+v, %v", got, err)
	}
	for name, bad := range map[string]string{
		"not canonical":  strings.Replace(string(b), `"layers":[`, `"layers": [`, 1),
		"unknown field":  strings.Replace(string(b), `{"schemaVersion":1,`, `{"schemaVersion":1,"x":1,`, 1),
		"other type":     strings.Replace(string(b), LayerListMediaType, "application/json", 1),
		"a tar":          "etc/passwd\x00\x00",
		"empty":          `{"schemaVersion":1,"mediaType":"application/vnd.kiln.layers.v1+json","layers":[]}`,
		"bad media type": strings.Replace(string(b), LayerMediaTypeGzip, "application/gzip", 1),
		"plain, diff id": strings.Replace(string(b), `"diff_id":"`+d("a"), `"diff_id":"`+d("e"), 1),
	} {
		if _, err := DecodeLayerList([]byte(bad)); ErrorCode(err) != EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	if _, err := EncodeLayerList(nil); err == nil {
		t.Error("an empty layer list encoded")
	}
}

func TestContentDigests(t *testing.T) {
	p := &Provenance{
		Artifact:  &Artifact{Digest: "sha256:list", Layers: []Layer{{Digest: "sha256:l1"}, {Digest: "sha256:l2"}}},
		Artifacts: []Artifact{{Digest: "sha256:qcow2"}},
	}
	got := strings.Join(p.ContentDigests(), " ")
	if want := "sha256:l1 sha256:l2 sha256:list sha256:qcow2"; got != want {
		t.Errorf("ContentDigests = %s, want %s", got, want)
	}
	if ds := (&Provenance{}).ContentDigests(); len(ds) != 0 {
		t.Errorf("no artifact: %v", ds)
	}
}
