package advisory

import (
	"testing"

	"github.com/kiln-project/kiln/internal/fixtures"
)

// needFixture finds a shared fixture (skips locally, fails under CI=true
// when absent).
func needFixture(t testing.TB, rel string) string { return fixtures.Path(t, rel) }
