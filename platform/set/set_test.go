package set_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/platform/memory"
	"github.com/kiln-project/kiln/platform/platformtest"
	"github.com/kiln-project/kiln/platform/set"
)

// named is a memory platform under another name.
type named struct {
	*memory.Platform
	name string
}

func (n named) Name() string { return n.name }

// inventory is the instances recorded so far, by id.
type inventory map[string]*kiln.Instance

func (i inventory) FindInstance(_ context.Context, id string) (*kiln.Instance, error) {
	if inst, ok := i[id]; ok {
		return inst, nil
	}
	return nil, kiln.Errorf(kiln.ENOTFOUND, "no instance %s", id)
}

func newSet(t *testing.T, inv set.Instances, vmErr error) (*set.Set, *memory.Platform, *memory.Platform, *int) {
	t.Helper()
	loc, vm := memory.New(), memory.New()
	loc.Artifacts, vm.Artifacts = arts, arts
	opened := 0
	s, err := set.New(inv,
		set.Driver{Name: "local", Open: func() (kiln.Platform, error) { return named{loc, "local"}, nil }},
		set.Driver{Name: "vm", Open: func() (kiln.Platform, error) {
			opened++
			if vmErr != nil {
				return nil, vmErr
			}
			return named{vm, "vm"}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return s, loc, vm, &opened
}

var (
	arts *artifact.Store
	art  *kiln.Artifact
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "set-test-")
	if err == nil {
		arts, err = artifact.Open(dir)
	}
	if err == nil {
		art, err = arts.Put(context.Background(), strings.NewReader("nothing boots it"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// A set of drivers keeps the contract of one (on its default driver).
func TestContract(t *testing.T) {
	s, _, _, _ := newSet(t, nil, nil)
	platformtest.RunContract(t, &platformtest.Harness{Platform: s, Artifacts: arts, Image: *art})
}

// Launches go to the driver they name; later calls to the driver the
// inventory recorded the instance on, or the one this process launched it
// on before it was recorded.
func TestRoutesByRecordedPlatform(t *testing.T) {
	ctx := context.Background()
	inv := inventory{}
	s, loc, vm, _ := newSet(t, inv, nil)
	if s.Name() != "local" || strings.Join(s.Names(), ",") != "local,vm" {
		t.Fatalf("Name %q Names %v", s.Name(), s.Names())
	}
	for id, plat := range map[string]string{"a": "vm", "b": "", "c": "local"} {
		if _, err := s.Launch(ctx, kiln.LaunchSpec{ID: id, Platform: plat, Artifact: *art}); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := vm.State(ctx, "a"); st != kiln.InstanceRunning {
		t.Fatalf("a on vm: %q", st)
	}
	if _, err := loc.State(ctx, "a"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Fatalf("a on local: %v", err)
	}
	// Not recorded yet: routed by what this process launched.
	if err := s.Stop(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if st, _ := vm.State(ctx, "a"); st != kiln.InstanceStopped {
		t.Fatalf("a on vm after stop: %q", st)
	}
	// Recorded: the inventory wins.
	inv["b"] = &kiln.Instance{ID: "b", Platform: "local"}
	if st, err := s.State(ctx, "b"); err != nil || st != kiln.InstanceRunning {
		t.Fatalf("b: %q %v", st, err)
	}
	inv["x"] = &kiln.Instance{ID: "x", Platform: "external"}
	if _, err := s.State(ctx, "x"); err == nil || !strings.Contains(err.Error(), "external platform") {
		t.Fatalf("x on an undriven platform: %v", err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := s.Destroy(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(vm.Destroyed(), ","); got != "a" {
		t.Fatalf("destroyed on vm: %q", got)
	}
	if _, err := s.Launch(ctx, kiln.LaunchSpec{ID: "d", Platform: "xen", Artifact: *art}); kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), "local, vm") {
		t.Fatalf("unknown platform: %v", err)
	}
}

// A driver that cannot run here is opened only when asked for, and says
// why each time; the other drivers work meanwhile.
func TestLazyDriver(t *testing.T) {
	ctx := context.Background()
	why := kiln.Errorf(kiln.EUNAVAILABLE, "qemu-system-x86_64 is not installed; install qemu-system-x86")
	s, _, _, opened := newSet(t, nil, why)
	if _, err := s.Launch(ctx, kiln.LaunchSpec{ID: "a", Artifact: *art}); err != nil {
		t.Fatal(err)
	}
	if err := s.Destroy(ctx, "unknown"); err != nil {
		t.Fatal(err)
	}
	if *opened != 0 {
		t.Fatalf("the vm driver was opened %d times without being asked for", *opened)
	}
	for range 2 {
		_, err := s.Launch(ctx, kiln.LaunchSpec{ID: "b", Platform: "vm", Artifact: *art})
		if !errors.Is(err, why) || !strings.Contains(err.Error(), "the vm platform cannot run here") {
			t.Fatalf("launch on a missing vm platform: %v", err)
		}
	}
	if *opened != 1 {
		t.Fatalf("opened %d times", *opened)
	}
}
