package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/pipeline"
)

func TestEnqueueOrderAndCoalesce(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	est, diags := definition.Load("../examples/estate", definition.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	runs, err := pipeline.Enqueue(ctx, db, est, nil, nil, "manual", false)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range runs {
		order = append(order, r.Image)
	}
	if strings.Join(order, " ") != "basic-linux appserver container-node" || runs[1].After != runs[0].ID || runs[2].After != runs[0].ID {
		t.Fatalf("order %v, after %d %d", order, runs[1].After, runs[2].After)
	}
	if got := stageNames(runs[1]); got != "build test scan dev staging prod" {
		t.Fatalf("appserver stages: %s", got)
	}
	if got := stageNames(runs[0]); got != "build test scan" {
		t.Fatalf("basic-linux stages: %s", got)
	}
	again, err := pipeline.Enqueue(ctx, db, est, nil, []string{"appserver"}, "schedule 0 4 * * 1", false)
	if err != nil || again[0].ID != runs[1].ID || !strings.Contains(again[0].Trigger, "schedule") {
		t.Fatalf("coalesce: %+v %v", again, err)
	}
	_, err = pipeline.Enqueue(ctx, db, est, nil, []string{"apserver"}, "x", false)
	if kiln.ErrorCode(err) != kiln.ENOTFOUND || !strings.Contains(kiln.ErrorMessage(err), "appserver") {
		t.Fatalf("unknown image: %v", err)
	}
}

func stageNames(r *kiln.Run) string {
	var s []string
	for _, st := range r.Stages {
		s = append(s, st.Name)
	}
	return strings.Join(s, " ")
}

// TestRecoverDeadWorker: a run held by a process of this host that no
// longer exists is marked interrupted with the reason; a live one's is not.
func TestRecoverDeadWorker(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	dead := fmt.Sprintf("%s:%d", host, cmd.Process.Pid)
	stages := []kiln.Stage{{Name: "build", Kind: kiln.StageBuild}}
	r, _, err := db.EnqueueRun(ctx, &kiln.NewRun{Image: "web", Estate: "/e", Trigger: "t", Stages: stages})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ClaimRun(ctx, dead); err != nil {
		t.Fatal(err)
	}
	r2, _, _ := db.EnqueueRun(ctx, &kiln.NewRun{Image: "app", Estate: "/e", Trigger: "t", Stages: stages})
	if _, err := db.ClaimRun(ctx, pipeline.WorkerName()); err != nil { // this process: alive
		t.Fatal(err)
	}
	runner := &pipeline.Runner{Store: db, Registry: db}
	got, err := runner.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != r.ID || !strings.Contains(got[0].Reason, "ended during the run") {
		t.Fatalf("recovered %+v", got)
	}
	if live, _ := db.FindRun(ctx, r2.ID); live.Status != kiln.RunRunning {
		t.Fatalf("live worker's run is %s", live.Status)
	}
}
