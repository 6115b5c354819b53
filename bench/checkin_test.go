package bench_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/bench"
	"github.com/kiln-project/kiln/internal/benchdrivers"
)

func TestCheckinsOnSQLite(t *testing.T) {
	env := &bench.Env{Dir: t.TempDir(), Drivers: benchdrivers.Real()}
	res, perTx, err := bench.CheckinsOn(context.Background(), env, "sqlite", 600)
	if err != nil {
		t.Fatal(err)
	}
	if res.N != 600 || res.Failed != 0 || perTx < 1 {
		t.Errorf("result %+v, %v per transaction", res, perTx)
	}
}

func TestMeasureWithoutDriversSaysSo(t *testing.T) {
	// An Env built without drivers is a wiring mistake, said plainly.
	_, _, err := bench.CheckinsOn(context.Background(), &bench.Env{Dir: t.TempDir()}, "sqlite", 1)
	if err == nil || !strings.Contains(err.Error(), "benchdrivers.Real") {
		t.Errorf("no drivers: %v", err)
	}
}
