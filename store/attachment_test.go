package store

import (
	"bytes"
	"context"
	"testing"

	"github.com/kiln-project/kiln"
)

func TestAttachments(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "appserver")
		v := mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})
		log := bytes.Repeat([]byte("I: Retrieving InRelease\n\x00\xff"), 1000)
		a := &kiln.Attachment{Name: "build.log", MediaType: "text/plain", Data: log}
		if err := e.AddAttachment(ctx, v.Ref(), a); err != nil {
			t.Fatal(err)
		}
		if a.Size != int64(len(log)) || a.CreatedAt.IsZero() {
			t.Errorf("added attachment: size %d, created %v", a.Size, a.CreatedAt)
		}
		if err := e.AddAttachment(ctx, v.Ref(), &kiln.Attachment{Name: "empty.json"}); err != nil {
			t.Fatal(err)
		}

		before := e.counts(t)
		err := e.AddAttachment(ctx, v.Ref(), &kiln.Attachment{Name: "build.log", Data: []byte("other")})
		wantContains(t, wantCode(t, err, kiln.EIMMUTABLE), "already has an attachment build.log", "write-once")
		wantCode(t, e.AddAttachment(ctx, ref("appserver", 2), &kiln.Attachment{Name: "x"}), kiln.ENOTFOUND)
		wantCode(t, e.AddAttachment(ctx, v.Ref(), &kiln.Attachment{Name: "../etc/passwd"}), kiln.EINVALID)
		e.unchanged(t, before)

		got := must[*kiln.Attachment](t)(e.Attachment(ctx, v.Ref(), "build.log"))
		if !bytes.Equal(got.Data, log) || got.MediaType != "text/plain" || got.Size != int64(len(log)) || !got.CreatedAt.Equal(a.CreatedAt) {
			t.Errorf("read back %s (%d bytes, %s, %v)", got.Name, len(got.Data), got.MediaType, got.CreatedAt)
		}
		_, err = e.Attachment(ctx, v.Ref(), "missing.txt")
		wantContains(t, wantCode(t, err, kiln.ENOTFOUND), "appserver-1 has no attachment missing.txt")

		list := must[[]*kiln.Attachment](t)(e.ListAttachments(ctx, v.Ref()))
		if len(list) != 2 || list[0].Name != "build.log" || list[1].Name != "empty.json" ||
			list[1].MediaType != "application/octet-stream" || list[1].Size != 0 || list[0].Data != nil {
			t.Errorf("ListAttachments = %+v", list)
		}
	})
}
