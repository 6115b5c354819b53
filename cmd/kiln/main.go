// Command kiln bakes, tests, versions and tracks server images. This
// package only wires: it is the one place that knows every concrete type.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := NewMain().App().Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
