package packer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/fixtures"
)

func parseFile(t *testing.T, path string) (*Manifest, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return Parse(filepath.Base(path), f)
}

// TestRealManifests reads the Packer manifests real projects committed.
func TestRealManifests(t *testing.T) {
	dir := fixtures.Path(t, "packer-manifest")
	for _, tc := range []struct {
		file                string
		builds              int
		firstRef, firstName string
		tags                kiln.Tags
		size                int64
	}{
		{"devopsmakers-centos7-hardened__packer-manifest.json", 1, "packer:amazon-ebs:eu-west-1:ami-fa43559c", "eu-west-1",
			kiln.Tags{"packer_build_name": "eu-west-1", "packer_builder_type": "amazon-ebs", "packer_run_uuid": "6bfb1f4e-ef96-70e1-c431-de814be3290a"}, 0},
		{"hashicorp-packer__docs-example-docker.json", 1, "packer:docker:Container", "docker",
			kiln.Tags{"my_custom_data": "example", "packer_build_name": "docker", "packer_builder_type": "docker", "packer_run_uuid": "6d5d3185-fa95-44e1-8775-9e64fe2e2d8f"}, 102219776},
		{"albarki-packer-circleci-qemu-debian__debian-10.x__packer-manifest.json", 11, "packer:qemu:VM", "debian",
			kiln.Tags{"packer_build_name": "debian", "packer_builder_type": "qemu", "packer_run_uuid": "fc98ef59-7f1c-9ca8-ab47-725be3993975"}, 452795904},
	} {
		t.Run(tc.file, func(t *testing.T) {
			m, err := parseFile(t, filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			nvs, err := m.Versions(tc.file, Options{Image: "web"})
			if err != nil {
				t.Fatal(err)
			}
			if len(nvs) != tc.builds {
				t.Fatalf("%d versions; want %d", len(nvs), tc.builds)
			}
			first := nvs[0]
			a := first.Provenance.Artifact
			if first.Image != "web" || first.Provenance.Method != kiln.MethodExternal || a.Ref != tc.firstRef || !a.External() || a.Size != tc.size {
				t.Errorf("first version %+v, artifact %+v", first, a)
			}
			if len(first.Tags) != len(tc.tags) {
				t.Errorf("tags %v; want %v", first.Tags, tc.tags)
			}
			for k, v := range tc.tags {
				if first.Tags[k] != v {
					t.Errorf("tag %s = %q; want %q", k, first.Tags[k], v)
				}
			}
			for i := 1; i < len(nvs); i++ {
				if nvs[i].Provenance.FinishedAt.Before(nvs[i-1].Provenance.FinishedAt) {
					t.Errorf("versions not in build-time order at %d", i)
				}
			}
			// Without --image, the build name is the image.
			if nvs, err := m.Versions(tc.file, Options{}); err != nil || nvs[0].Image != tc.firstName {
				t.Errorf("image from the build name: %v, %v", nvs, err)
			}
		})
	}
}

func TestMultiRegion(t *testing.T) {
	m, err := parseFile(t, "testdata/multi-region.json")
	if err != nil {
		t.Fatal(err)
	}
	nvs, err := m.Versions("multi-region.json", Options{})
	if err != nil {
		t.Fatal(err)
	}
	v := nvs[0]
	if v.Provenance.Artifact.Ref != "packer:amazon-ebs:us-east-1:ami-0abc1234def567890,eu-west-1:ami-0fed9876cba543210" ||
		v.Tags["team"] != "payments" || v.Tags["git_commit"] != "4f2a9c1" ||
		!v.Provenance.FinishedAt.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("%+v %+v", v, v.Provenance)
	}
}

// TestMalformed checks every malformed manifest is refused with the file
// and the JSON path (or line:column) of the fault.
func TestMalformed(t *testing.T) {
	for _, tc := range []struct{ file, field, msg string }{
		{"truncated.json", "truncated.json:3:1", "not valid JSON"},
		{"no-builds.json", "no-builds.json: $.builds", "has a builds array"},
		{"empty-builds.json", "empty-builds.json: $.builds", "nothing to import"},
		{"missing-artifact.json", "missing-artifact.json: $.builds[1].artifact_id", "missing or empty"},
		{"build-time-string.json", "build-time-string.json: $.builds[0].build_time", `is a string "yesterday"; want the Unix time`},
		{"custom-data-number.json", "custom-data-number.json: $.builds[0].custom_data.replicas", "custom_data values are strings"},
		{"files-not-array.json", "files-not-array.json: $.builds[0].files", "want an array"},
		{"bad-builder.json", "bad-builder.json: $.builds[0].builder_type", "not a Packer builder type"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := parseFile(t, filepath.Join("testdata", tc.file))
			if kiln.ErrorCode(err) != kiln.EINVALID || kiln.ErrorField(err) != tc.field || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v (field %q); want EINVALID at %q saying %q", err, kiln.ErrorField(err), tc.field, tc.msg)
			}
		})
	}
}

func TestVersionsRefuses(t *testing.T) {
	m := &Manifest{Builds: []Build{{Name: "Not An Image", BuilderType: "qemu", ArtifactID: "VM", BuildTime: time.Unix(1, 0)}}}
	_, err := m.Versions("m.json", Options{})
	if kiln.ErrorField(err) != "m.json: $.builds[0].name" || !strings.Contains(err.Error(), "--image") {
		t.Errorf("invalid build name as image: %v", err)
	}
	m.Builds[0].CustomData = map[string]string{"packer_run_uuid": "x"}
	m.Builds[0].RunUUID = "y"
	_, err = m.Versions("m.json", Options{Image: "web"})
	if kiln.ErrorField(err) != "m.json: $.builds[0].custom_data.packer_run_uuid" {
		t.Errorf("custom_data shadowing kiln's tag: %v", err)
	}
	m.Builds[0].CustomData = map[string]string{"Release_Status": "ready"}
	_, err = m.Versions("m.json", Options{Image: "web"})
	if !strings.Contains(kiln.ErrorField(err), "custom_data.Release_Status") {
		t.Errorf("system tag in custom_data: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"multi-region.json", "missing-artifact.json", "truncated.json"} {
		b, _ := os.ReadFile(filepath.Join("testdata", name))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("fuzz.json", strings.NewReader(string(data)))
		if err != nil {
			if kiln.ErrorCode(err) != kiln.EINVALID {
				t.Fatalf("non-EINVALID error: %v", err)
			}
			return
		}
		_, _ = m.Versions("fuzz.json", Options{Image: "web"})
	})
}
