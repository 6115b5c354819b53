package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

func TestReproductionsAndEpoch(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "alice")
		mkImage(t, e.DB, "basic-linux")
		v := mkVersion(t, e.DB, &kiln.NewVersion{Image: "basic-linux", Provenance: kiln.Provenance{
			Method: kiln.MethodFresh, SourceDateEpoch: 1733500000, SourceDateEpochFrom: "git commit 0123abc",
		}})
		got := must[*kiln.Version](t)(e.FindVersion(ctx, v.Ref()))
		if got.Provenance.SourceDateEpoch != 1733500000 || got.Provenance.SourceDateEpochFrom != "git commit 0123abc" {
			t.Fatalf("epoch not kept: %d %q", got.Provenance.SourceDateEpoch, got.Provenance.SourceDateEpochFrom)
		}
		if list := must[[]*kiln.Reproduction](t)(e.ListReproductions(ctx, v.Ref())); len(list) != 0 {
			t.Fatalf("new version has checks: %+v", list)
		}
		d1 := "sha256:" + strings.Repeat("a", 64)
		d2 := "sha256:" + strings.Repeat("b", 64)
		diff := []kiln.DifferingFile{{Path: "/etc/stamp", What: []string{"content", "size"}, Step: "shell (stamp.kiln.hcl:5)"}}
		if err := e.RecordReproduction(ctx, &kiln.Reproduction{Version: v.Ref(), Identical: false, Digest: d2, Summary: "1 files differ", Elapsed: 1500 * time.Millisecond, DifferingFiles: 1, Files: diff}); err != nil {
			t.Fatal(err)
		}
		if err := e.RecordReproduction(ctx, &kiln.Reproduction{Version: v.Ref(), Identical: true, Digest: d1}); err != nil {
			t.Fatal(err)
		}
		list := must[[]*kiln.Reproduction](t)(e.ListReproductions(ctx, v.Ref()))
		if len(list) != 2 || !list[0].Identical || list[1].Identical || list[1].Summary != "1 files differ" ||
			list[1].Elapsed != 1500*time.Millisecond || list[0].Actor != "alice" || !list[0].At.After(list[1].At) {
			t.Fatalf("checks: %+v %+v", list[0], list[1])
		}
		if f := list[1].Files; list[1].DifferingFiles != 1 || len(f) != 1 || f[0].Path != "/etc/stamp" || strings.Join(f[0].What, ",") != "content,size" || f[0].Step != diff[0].Step || list[0].Files != nil || list[0].DifferingFiles != 0 {
			t.Fatalf("differing files: %+v / %+v", list[1], list[0])
		}
		wantCode(t, e.RecordReproduction(ctx, &kiln.Reproduction{Version: v.Ref(), Digest: d1, DifferingFiles: 0, Files: diff}), kiln.EINVALID)
		wantCode(t, e.RecordReproduction(ctx, &kiln.Reproduction{Version: ref("basic-linux", 9), Digest: d1}), kiln.ENOTFOUND)
		wantCode(t, e.RecordReproduction(ctx, &kiln.Reproduction{Version: v.Ref(), Digest: "nope"}), kiln.EINVALID)
		_, err := e.ListReproductions(ctx, ref("basic-linux", 9))
		wantCode(t, err, kiln.ENOTFOUND)
		h := must[[]*kiln.HistoryEntry](t)(e.History(ctx, v.Ref()))
		if last := h[len(h)-1]; last.Field != "reproduction" || last.To != "identical" {
			t.Errorf("history: %+v", last)
		}

		// A sealed check keeps its signed record in the same transaction,
		// under the check's own name; a seal under another name, or one
		// that fails, records nothing.
		sealed := &kiln.Reproduction{Version: v.Ref(), Identical: true, Digest: d1, Seal: func(r *kiln.Reproduction) (*kiln.Attachment, error) {
			return &kiln.Attachment{Name: r.AttestationName(), MediaType: "application/vnd.dsse.envelope.v1+json", Data: []byte(`{"signed":"` + r.Actor + `"}`)}, nil
		}}
		if err := e.RecordReproduction(ctx, sealed); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []func(*kiln.Reproduction) (*kiln.Attachment, error){
			func(*kiln.Reproduction) (*kiln.Attachment, error) {
				return &kiln.Attachment{Name: "reproduction.dsse.json", Data: []byte("{}")}, nil
			},
			func(*kiln.Reproduction) (*kiln.Attachment, error) { return nil, kiln.Errorf(kiln.EINVALID, "no key") },
		} {
			if err := e.RecordReproduction(ctx, &kiln.Reproduction{Version: v.Ref(), Digest: d2, Seal: bad}); err == nil {
				t.Error("a check whose seal is misnamed or fails was recorded")
			}
		}
		list = must[[]*kiln.Reproduction](t)(e.ListReproductions(ctx, v.Ref()))
		if len(list) != 3 || list[0].Attestation != sealed.AttestationName() || sealed.Attestation != sealed.AttestationName() || list[1].Attestation != "" || list[2].Attestation != "" {
			t.Fatalf("after a sealed check and two refused ones: %d checks, attestations %q %q; want 3, the newest %q", len(list), list[0].Attestation, list[1].Attestation, sealed.AttestationName())
		}
		a := must[*kiln.Attachment](t)(e.Attachment(ctx, v.Ref(), list[0].Attestation))
		if string(a.Data) != `{"signed":"alice"}` {
			t.Errorf("kept seal %s: %s", a.Name, a.Data)
		}
		if as := must[[]*kiln.Attachment](t)(e.ListAttachments(ctx, v.Ref())); len(as) != 1 {
			t.Errorf("attachments %d; want only the sealed check's", len(as))
		}
	})
}
