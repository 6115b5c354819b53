package rollout

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

// A foreign listener on the front end's address: StartFrontEnd fails
// naming the address and the process, instead of mistaking that listener
// for the front end it started.
func TestStartFrontEndPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	// The command would exit at once: only the port check can refuse.
	err = StartFrontEnd(context.Background(), t.TempDir(), "dup", addr, []string{"/bin/true"}, nil)
	want := fmt.Sprintf("%s is in use by another process (pid %d)", addr, os.Getpid())
	if err == nil || !strings.Contains(err.Error(), want) || kiln.ErrorCode(err) != kiln.ECONFLICT {
		t.Fatalf("StartFrontEnd on a taken port: %v; want %q", err, want)
	}
	if err := CheckPortFree(addr); err == nil {
		t.Fatal("CheckPortFree: a taken port is free")
	}
}

// The started front end reports on its readiness pipe; what it says (or
// its exit without a word) is what StartFrontEnd returns.
func TestStartFrontEndReadiness(t *testing.T) {
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	for _, c := range []struct {
		script, want string
	}{
		{`echo "error: 127.0.0.1:1 is in use by another process (pid 7)" >&"$` + ReadyFDEnv + `"`, "in use by another process (pid 7)"},
		{`exit 3`, "exited at start"},
		{`test "$` + ReadyFDEnv + `" = 3 && echo ready >&3`, ""},
	} {
		err := StartFrontEnd(context.Background(), t.TempDir(), "web", free(), []string{"sh", "-c", c.script}, []string{"PATH=/usr/bin:/bin"})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.script, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v; want %q", c.script, err, c.want)
		}
	}
}

// A rollout refuses to begin when its front end is not running, at
// once, rather than time out waiting for it to take the first batch.
func TestBeginRefusesWithoutFrontEnd(t *testing.T) {
	env := newHostEnv(t)
	e := &Engine{Services: env.db, Rollouts: env.db, Registry: env.db, Launcher: env.launcher(),
		FrontEndRunning: func(context.Context, string) (bool, error) { return false, nil }}
	_, err := e.Begin(kiln.WithActor(context.Background(), "local:test"), "web", kiln.VersionRef{Image: "appserver", Number: 1}, Options{})
	if err == nil || !strings.Contains(err.Error(), "front end of web is not running") || !strings.Contains(err.Error(), "kiln service start web") {
		t.Fatalf("Begin without a front end: %v", err)
	}
	if rs, _ := env.db.ListRollouts(context.Background(), "web", 0); len(rs) != 0 {
		t.Errorf("a refused rollout was recorded: %+v", rs)
	}
}

// Through the Host, a service whose port another process holds: the
// rollout is refused with the port's owner, nothing is launched.
func TestHostRolloutRefusedWhenPortTaken(t *testing.T) {
	env := newHostEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx := kiln.WithActor(context.Background(), "local:test")
	if err := env.db.CreateService(ctx, &kiln.Service{Name: "api", Image: "appserver", Environment: "prod", Replicas: 1, Listen: ln.Addr().String()}); err != nil {
		t.Fatal(err)
	}
	h, _ := env.serve(t)
	_, err = h.StartRollout(ctx, kiln.RolloutRequest{Service: "api", To: kiln.VersionRef{Image: "appserver", Number: 1}})
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()+" is in use by another process") {
		t.Fatalf("rollout of a service whose port is taken: %v", err)
	}
	if rs, _ := env.db.ListRollouts(ctx, "api", 0); len(rs) != 0 {
		t.Errorf("a refused rollout was recorded: %+v", rs)
	}
}
