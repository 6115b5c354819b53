package debian

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/fixtures"
)

// needFixture finds a shared fixture (skips locally, fails under CI=true
// when absent).
func needFixture(t testing.TB, rel string) string { return fixtures.Path(t, rel) }

// requireTool skips when a host tool is missing, and fails under CI=true.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	return ci.Tool(t, name, name)
}

func opOf(c int) string {
	switch {
	case c < 0:
		return "<"
	case c > 0:
		return ">"
	}
	return "="
}

func TestCompareVersionsDpkgVectors(t *testing.T) {
	dir := needFixture(t, "dpkg-versions")
	files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vector files in %s (%v)", dir, err)
	}
	total := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		line := 0
		for sc.Scan() {
			line++
			fields := strings.Fields(sc.Text())
			if len(fields) == 0 {
				continue
			}
			if len(fields) != 3 {
				t.Fatalf("%s:%d: want 'a op b', got %q", f, line, sc.Text())
			}
			a, want, b := fields[0], fields[1], fields[2]
			c, err := CompareVersions(a, b)
			if err != nil {
				t.Errorf("%s:%d: %v", filepath.Base(f), line, err)
				continue
			}
			if got := opOf(c); got != want {
				t.Errorf("%s:%d: %s %s %s, dpkg says %s", filepath.Base(f), line, a, got, b, want)
			}
			// The reverse must be the mirror image.
			if r, _ := CompareVersions(b, a); r != -c {
				t.Errorf("%s:%d: compare(%s,%s)=%d but compare(%s,%s)=%d", filepath.Base(f), line, a, b, c, b, a, r)
			}
			total++
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		fh.Close()
	}
	t.Logf("%d vector lines agree with dpkg", total)
}

func TestParseVersionRejects(t *testing.T) {
	for _, s := range []string{"", " ", "1.0 1", "a:1.0", ":1.0", "1:", "-1", "1.0-", "1:-1", "-1:1.0"} {
		if _, err := ParseVersion(s); err == nil {
			t.Errorf("ParseVersion(%q) accepted; dpkg rejects it", s)
		}
	}
	for _, s := range []string{"0", "1:0.11.1-1~exp1", "2.4.2-6+lenny1", "7.0.56-3+really7.0.109-1+deb8u5", "1.2-3-4", "20250419~deb12u1~deb11u1"} {
		if _, err := ParseVersion(s); err != nil {
			t.Errorf("ParseVersion(%q): %v", s, err)
		}
	}
}

// genVersion makes a syntactically valid Debian version from r, biased
// towards the tricky parts: epochs, tildes, leading zeros, letter/digit
// mixes, '+' and '.' separators, and hyphens inside the upstream part.
func genVersion(r *rand.Rand) string {
	var b strings.Builder
	if r.IntN(4) == 0 {
		fmt.Fprintf(&b, "%d:", r.IntN(3))
	}
	b.WriteString(genPart(r, true))
	if r.IntN(3) > 0 {
		if r.IntN(6) == 0 {
			b.WriteString("-" + genPart(r, false)) // a hyphen inside upstream
		}
		b.WriteString("-" + genPart(r, false))
	}
	return b.String()
}

func genPart(r *rand.Rand, upstream bool) string {
	const letters = "abcxyzABZ"
	var b strings.Builder
	if upstream || r.IntN(2) == 0 {
		fmt.Fprint(&b, r.IntN(12)) // upstream starts with a digit
	}
	for n := r.IntN(5); n > 0; n-- {
		switch r.IntN(9) {
		case 0, 1:
			b.WriteString("." + fmt.Sprint(r.IntN(20)))
		case 2:
			b.WriteString(strings.Repeat("0", r.IntN(3)) + fmt.Sprint(r.IntN(10)))
		case 3:
			b.WriteByte(letters[r.IntN(len(letters))])
		case 4:
			b.WriteString("~")
		case 5:
			b.WriteString("+")
		case 6:
			b.WriteString([]string{"~rc", "~deb12u", "+deb12u", "+b", "~exp", "really", "+dfsg"}[r.IntN(7)] + fmt.Sprint(r.IntN(4)))
		case 7:
			b.WriteString("~~")
		case 8:
			b.WriteString(".")
		}
	}
	if b.Len() == 0 {
		fmt.Fprint(&b, r.IntN(3))
	}
	return b.String()
}

// mutate returns a version close to v, so that pairs differ in one place.
func mutate(r *rand.Rand, v string) string {
	switch r.IntN(8) {
	case 0:
		return v + "~"
	case 1:
		return v + "+b1"
	case 2:
		return "0:" + strings.TrimPrefix(v, "0:")
	case 3:
		if i := strings.LastIndexByte(v, '-'); i > 0 {
			return v[:i] // drop the revision (only the last part)
		}
		return v + "-0"
	case 4:
		return strings.Replace(v, ".", ".0", 1)
	case 5:
		return strings.Replace(v, "~", "", 1)
	}
	return genVersion(r)
}

// TestCompareVersionsAgainstDpkg compares a few thousand generated pairs
// with the real `dpkg --compare-versions` on this host.
func TestCompareVersionsAgainstDpkg(t *testing.T) {
	dpkg := requireTool(t, "dpkg")
	n := 3000
	if testing.Short() {
		n = 300
	}
	r := rand.New(rand.NewPCG(2026, 11))
	type pair struct{ a, b, ours string }
	pairs := make([]pair, 0, n)
	ops := map[string]int{}
	for len(pairs) < n {
		a := genVersion(r)
		b := mutate(r, a)
		if r.IntN(5) == 0 {
			b = genVersion(r)
		}
		c, err := CompareVersions(a, b)
		if err != nil {
			// The generator and mutator only make versions dpkg accepts
			// (checked by dpkg below for the ones we keep); a rejected one
			// must be rejected by dpkg too.
			if out, derr := exec.Command(dpkg, "--compare-versions", "--", a, "lt", b).CombinedOutput(); derr == nil || !strings.Contains(string(out), "error") {
				t.Errorf("we reject %q vs %q (%v) but dpkg does not: %s", a, b, err, out)
			}
			continue
		}
		pairs = append(pairs, pair{a, b, opOf(c)})
		ops[opOf(c)]++
	}

	dpkgOp := func(ctx context.Context, a, b string) (string, error) {
		for _, op := range []struct{ rel, sym string }{{"lt", "<"}, {"eq", "="}} {
			cmd := exec.CommandContext(ctx, dpkg, "--compare-versions", "--", a, op.rel, b)
			out, err := cmd.CombinedOutput()
			if len(out) > 0 {
				return "", fmt.Errorf("dpkg printed %q for %q %s %q", out, a, op.rel, b)
			}
			if err == nil {
				return op.sym, nil
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				return "", fmt.Errorf("dpkg --compare-versions %q %s %q: %w", a, op.rel, b, err)
			}
		}
		return ">", nil
	}

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		mismatch int
		next     = make(chan pair)
	)
	for range 2 * runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				want, err := dpkgOp(t.Context(), p.a, p.b)
				mu.Lock()
				if err != nil {
					t.Error(err)
				} else if want != p.ours {
					mismatch++
					t.Errorf("%s %s %s, dpkg says %s", p.a, p.ours, p.b, want)
				}
				mu.Unlock()
			}
		}()
	}
	for _, p := range pairs {
		next <- p
	}
	close(next)
	wg.Wait()
	t.Logf("%d generated pairs (%d <, %d =, %d >) compared with %s, %d disagreements", len(pairs), ops["<"], ops["="], ops[">"], dpkg, mismatch)
}

func FuzzCompareVersions(f *testing.F) {
	for _, s := range [][2]string{{"1:0.11.1-1~exp1", "20210528-1"}, {"1.0-", "1"}, {"~~", "0"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		c, err := CompareVersions(a, b)
		if err != nil {
			return
		}
		if r, _ := CompareVersions(b, a); r != -c {
			t.Fatalf("compare(%q,%q)=%d but reverse=%d", a, b, c, r)
		}
		if s, _ := CompareVersions(a, a); s != 0 {
			t.Fatalf("%q != itself", a)
		}
	})
}
