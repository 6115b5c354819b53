package store

import (
	"context"
	"testing"

	"github.com/kiln-project/kiln"
)

func TestImages(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		img := mkImage(t, e.DB, "basic-linux")
		if img.ID == 0 || !img.CreatedAt.Equal(e.clock.t) {
			t.Errorf("created image = %+v; want an id and the clock's time %v", img, e.clock.t)
		}
		mkImage(t, e.DB, "appserver")

		before := e.counts(t)
		msg := wantCode(t, e.CreateImage(ctx, &kiln.Image{Name: "appserver"}), kiln.ECONFLICT)
		wantContains(t, msg, "appserver exists already")
		wantCode(t, e.CreateImage(ctx, &kiln.Image{Name: "Bad_Name"}), kiln.EINVALID)
		e.unchanged(t, before)

		got := must[*kiln.Image](t)(e.FindImage(ctx, "basic-linux"))
		if got.Name != "basic-linux" || got.Description != "the basic-linux line" || got.LatestNumber != 0 || !got.CreatedAt.Equal(img.CreatedAt) {
			t.Errorf("FindImage = %+v, want %+v", got, img)
		}
		msg = wantCode(t, func() error { _, err := e.FindImage(ctx, "nginx"); return err }(), kiln.ENOTFOUND)
		wantContains(t, msg, "image nginx does not exist", "kiln image create nginx")

		mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})
		mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})
		imgs := must[[]*kiln.Image](t)(e.ListImages(ctx))
		if len(imgs) != 2 || imgs[0].Name != "appserver" || imgs[1].Name != "basic-linux" {
			t.Fatalf("ListImages = %+v, want appserver and basic-linux", imgs)
		}
		if imgs[0].LatestNumber != 2 || imgs[1].LatestNumber != 0 {
			t.Errorf("LatestNumber = %d, %d; want 2, 0", imgs[0].LatestNumber, imgs[1].LatestNumber)
		}
	})
}
