package flock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func open(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestTryLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	for _, tc := range []struct {
		name        string
		first, then Mode
		held        bool
	}{
		{"shared then shared", Shared, Shared, false},
		{"shared then exclusive", Shared, Exclusive, true},
		{"exclusive then shared", Exclusive, Shared, true},
		{"exclusive then exclusive", Exclusive, Exclusive, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := open(t, path), open(t, path)
			if err := TryLock(a, tc.first); err != nil {
				t.Fatal(err)
			}
			err := TryLock(b, tc.then)
			if got := errors.Is(err, ErrHeld); got != tc.held {
				t.Fatalf("TryLock = %v; want held %v", err, tc.held)
			}
			if tc.held && !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			a.Close()
			if err := TryLock(b, tc.then); err != nil {
				t.Errorf("after the holder closed its file: %v", err)
			}
		})
	}
}

func TestLockWaits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, b := open(t, path), open(t, path)
	if err := TryLock(a, Exclusive); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if err := Lock(ctx, b, Shared); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock while held = %v; want the context's deadline", err)
	}
	for _, ctx := range []context.Context{t.Context(), context.Background()} {
		holder := a
		time.AfterFunc(100*time.Millisecond, func() { holder.Close() })
		if err := Lock(ctx, b, Exclusive); err != nil {
			t.Fatalf("Lock after release: %v", err)
		}
		b.Close()
		a, b = open(t, path), open(t, path)
		if err := TryLock(a, Exclusive); err != nil {
			t.Fatal(err)
		}
	}
}
