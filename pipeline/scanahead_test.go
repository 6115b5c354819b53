package pipeline

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/store"
)

// readSignal signals the first advisory read and counts them.
type readSignal struct {
	kiln.AdvisoryStore
	batch kiln.AdvisoriesByPackage
	once  sync.Once
	read  chan struct{}
	mu    sync.Mutex
	reads int
}

func (s *readSignal) AdvisoriesForPackages(ctx context.Context, names []string) ([]*kiln.Advisory, error) {
	s.mu.Lock()
	s.reads++
	s.mu.Unlock()
	s.once.Do(func() { close(s.read) })
	return s.batch.AdvisoriesForPackages(ctx, names)
}

func (s *readSignal) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// TestScanReadsWhileTheTestStageRuns: with a scan stage after the test
// stage, the scan reads the advisories as the test stage starts (before
// the scan stage runs), and the scan stage then records what that reading
// found, reading nothing again: the same outcome as reading in its turn.
func TestScanReadsWhileTheTestStageRuns(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, "", t.TempDir(), slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	pkgs := []kiln.Package{{Name: "libssl3", Version: "3.0.11-1~deb12u1", Architecture: "amd64", Source: "openssl"}}
	v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web", Provenance: kiln.Provenance{Packages: pkgs}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutAdvisories(ctx, []*kiln.Advisory{{ID: "DSA-5532-1", Source: kiln.AdvisoryOSV, Packages: []kiln.AffectedPackage{
		{Ecosystem: "Debian:12", Release: "bookworm", Name: "openssl", Fixed: "3.0.11-1~deb12u2", Status: kiln.AffectedFixed, Severity: "high"}}}}); err != nil {
		t.Fatal(err)
	}
	img := &definition.Image{Name: "web", Debian: &definition.Debian{Suite: "bookworm"}}
	est := &definition.Estate{Images: map[string]*definition.Image{"web": img}}
	p := &definition.Pipeline{Scan: definition.ScanPolicy{OnAffected: "warn"}}
	newExec := func(adv *readSignal) *exec {
		r := &Runner{Store: db, Registry: db, Advisories: adv}
		return &exec{r: r, est: est, img: img, p: p, ver: v, log: &runLog{r: r, ctx: ctx, id: 1}}
	}

	ahead := &readSignal{AdvisoryStore: db, batch: db, read: make(chan struct{})}
	e := newExec(ahead)
	e.startScan(ctx, []kiln.Stage{{Kind: kiln.StageScan, Status: kiln.StagePending}})
	select {
	case <-ahead.read:
	case <-time.After(time.Minute):
		t.Fatal("the scan did not read the advisories before its stage ran")
	}
	status, detail, err := e.scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := ahead.count(); n != 1 {
		t.Errorf("the advisories were read %d times, want once", n)
	}
	if e.scanAhead != nil {
		t.Error("the reading is kept after the scan stage took it")
	}

	inTurn := &readSignal{AdvisoryStore: db, batch: db, read: make(chan struct{})}
	wantStatus, wantDetail, err := newExec(inTurn).scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if status != wantStatus || detail != wantDetail || status != kiln.StageWarned {
		t.Errorf("read ahead: %s %q; read in its turn: %s %q (want warned)", status, detail, wantStatus, wantDetail)
	}

	// No scan stage left to run: nothing is read ahead.
	none := &readSignal{AdvisoryStore: db, batch: db, read: make(chan struct{})}
	e = newExec(none)
	e.startScan(ctx, []kiln.Stage{{Kind: kiln.StageScan, Status: kiln.StagePassed}, {Kind: kiln.StageDeliver}})
	if e.scanAhead != nil {
		t.Error("a scan that passed already is read ahead")
	}
}
