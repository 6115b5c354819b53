// Package ci holds the one rule for tests that need something from the
// machine (root, a tool, PostgreSQL, shared fixtures): on a developer's
// laptop they skip with the reason; under CI=true they fail, so CI never
// passes by skipping. Only tests import it.
package ci

import (
	"os"
	"os/exec"
	"testing"
)

// SkipOrFail skips tb with reason, or fails it when CI=true.
func SkipOrFail(tb testing.TB, reason string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s (CI=true: failing instead of skipping)", reason)
	}
	tb.Skip(reason)
}

// Postgres returns the URL of the test PostgreSQL (KILN_TEST_POSTGRES, set
// by `eval "$(scripts/postgres-test.sh)"`), skipping or failing without it.
func Postgres(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("KILN_TEST_POSTGRES")
	if u == "" {
		SkipOrFail(tb, "KILN_TEST_POSTGRES is not set; start PostgreSQL with: eval \"$(scripts/postgres-test.sh)\"")
	}
	return u
}

// Root skips or fails tb unless the test runs as root; why says what needs it.
func Root(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(tb, why+" needs root")
	}
}

// Tool returns the path of a host tool, skipping or failing tb when it is
// missing; pkg is the Debian package that provides it.
func Tool(tb testing.TB, name, pkg string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		SkipOrFail(tb, name+" is not installed (apt-get install "+pkg+")")
	}
	return p
}
