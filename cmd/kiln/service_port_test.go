package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
)

// Another process listens on the service's address: `kiln service
// create` and `kiln service start` fail naming the address and the
// process, instead of reporting the front end running.
func TestServiceFrontEndPortInUse(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	mustRun(t, dir, "image", "create", "appserver")
	want := fmt.Sprintf("%s is in use by another process (pid %d)", addr, os.Getpid())
	for _, args := range [][]string{
		{"service", "create", "dup", "--image", "appserver", "--env", "prod", "--port", addr},
		{"service", "start", "dup"},
	} {
		out, errs, code := run(t, dir, args...)
		if code == 0 || !strings.Contains(errs, want) {
			t.Errorf("kiln %s with the port taken: exit %d\n%s%s\nwant %q", strings.Join(args, " "), code, out, errs, want)
		}
	}
	// With the port free the front end starts and reports itself.
	ln.Close()
	out := mustRun(t, dir, "service", "start", "dup")
	if !strings.Contains(out, "running") {
		t.Errorf("service start: %s", out)
	}
	mustRun(t, dir, "service", "stop", "dup")
}
