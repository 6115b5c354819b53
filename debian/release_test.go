package debian

import (
	"testing"
	"time"
)

func TestReleaseDate(t *testing.T) {
	in := "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nSuite: stable\nDate: Sat, 10 Jan 2026 10:21:43 UTC\nValid-Until: x\n"
	got, err := releaseDate([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 1, 10, 10, 21, 43, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("releaseDate = %v, want %v", got, want)
	}
	if _, err := releaseDate([]byte("Origin: Debian\n")); err == nil {
		t.Fatal("a Release file without Date was accepted")
	}
}
