package launch_test

import (
	"context"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/platform/memory"
	"github.com/kiln-project/kiln/store"
)

func digest(b string) string { return "sha256:" + strings.Repeat(b, 32) }

// The launcher hands each platform the artifact it boots: the root
// filesystem to one that declares nothing (the local platform), the qcow2
// (else raw) disk image to one that boots disk images (the VM platform),
// and refuses a disk launch of a version without a disk image, saying how
// to get one, before the platform is asked.
func TestLaunchPicksArtifact(t *testing.T) {
	ctx := kiln.WithActor(context.Background(), "local:test")
	db, err := store.Open(ctx, "", t.TempDir(), nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key := testenv.Sign(t, db)
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Fatal(err)
	}
	rootfs := func(b string) *kiln.Artifact {
		return &kiln.Artifact{Ref: "local:" + digest(b), Digest: digest(b), Size: 1}
	}
	diskArt := func(b string, f kiln.ArtifactFormat) kiln.Artifact {
		return kiln.Artifact{Ref: "local:" + digest(b), Digest: digest(b), Size: 2, Format: f}
	}
	for _, p := range []kiln.Provenance{
		{Artifact: rootfs("01")}, // appserver-1: rootfs only
		{Artifact: rootfs("02"), Artifacts: []kiln.Artifact{diskArt("2a", kiln.FormatRaw), diskArt("2b", kiln.FormatQCOW2)}}, // appserver-2
		{Artifact: rootfs("03"), Artifacts: []kiln.Artifact{diskArt("3a", kiln.FormatRaw)}},                                  // appserver-3
	} {
		p.BuiltBy = "test"
		if _, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", Provenance: p}); err != nil {
			t.Fatal(err)
		}
	}
	local := memory.New()
	vm := memory.New()
	vm.Formats = []kiln.ArtifactFormat{kiln.FormatQCOW2, kiln.FormatRaw}
	launcher := func(p kiln.Platform) *launch.Launcher {
		return &launch.Launcher{Registry: db, Platform: p, Inventory: db, Key: key}
	}
	for _, tc := range []struct {
		plat    *memory.Platform
		version int
		want    string // digest launched, or the error
	}{
		{local, 1, digest("01")},
		{local, 2, digest("02")},
		{vm, 2, digest("2b")}, // qcow2 preferred over raw
		{vm, 3, digest("3a")}, // raw when there is no qcow2
		{vm, 1, `appserver-1 has no disk image; add formats = ["qcow2"] to its image line and build again`},
	} {
		ref := kiln.VersionRef{Image: "appserver", Number: tc.version}
		id := ref.String() + "-" + map[bool]string{true: "vm", false: "local"}[tc.plat == vm]
		l := launcher(tc.plat)
		_, err := l.Launch(ctx, launch.Request{Version: ref, ID: id})
		if strings.HasPrefix(tc.want, "sha256:") {
			if err != nil {
				t.Errorf("%s: %v", id, err)
				continue
			}
			if got := tc.plat.LaunchedArtifact(id); got != tc.want {
				t.Errorf("%s launched %s, want %s", id, got, tc.want)
			}
			continue
		}
		if err == nil || kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want EINVALID %q", id, err, tc.want)
		}
		if tc.plat.LaunchedArtifact(id) != "" {
			t.Errorf("%s: the platform was asked to launch a version it cannot boot", id)
		}
		// Check says the same before anything is launched.
		if _, err := l.Check(ctx, ref, nil); err == nil || !strings.Contains(err.Error(), "has no disk image") {
			t.Errorf("Check %s: %v", ref, err)
		}
	}
	if got := kiln.PlatformFormats(local); len(got) != 1 || got[0] != kiln.FormatRootfs {
		t.Errorf("a platform that declares nothing boots %v, want rootfs", got)
	}
}
