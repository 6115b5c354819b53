package overlayfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Paths overlayfs options cannot carry are refused before anything is
// created or mounted.
func TestMountRefusesSeparators(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []Overlay{
		{Lowers: []string{filepath.Join(dir, "low,er")}, Upper: filepath.Join(dir, "upper"), Work: filepath.Join(dir, "work"), Target: filepath.Join(dir, "merged")},
		{Lowers: []string{filepath.Join(dir, "lower")}, Upper: filepath.Join(dir, "up:per"), Work: filepath.Join(dir, "work"), Target: filepath.Join(dir, "merged")},
		{Lowers: []string{filepath.Join(dir, "lower"), filepath.Join(dir, "b:ase")}, Target: filepath.Join(dir, "merged")},
	} {
		err := o.Mount()
		if err == nil || !strings.Contains(err.Error(), "',' or ':'") {
			t.Errorf("Mount(%+v) = %v, want a refusal naming ',' or ':'", o, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "merged")); !os.IsNotExist(err) {
		t.Errorf("a refused mount created its target: %v", err)
	}
	if err := (&Overlay{Target: filepath.Join(dir, "merged")}).Mount(); err == nil {
		t.Error("an overlay without lower directory was accepted")
	}
}
