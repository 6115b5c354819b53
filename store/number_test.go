package store

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/kiln-project/kiln"
)

// Version numbers must come out 1..n with no gap and no duplicate however
// many callers race: goroutines on one handle, several handles (*sql.DB) on
// one database, and several processes.

const racers = 1000

// createConcurrently runs n CreateVersion calls at once on dbs (round
// robin) and returns the numbers they got.
func createConcurrently(t *testing.T, image string, n int, dbs ...*DB) []int {
	t.Helper()
	var wg sync.WaitGroup
	nums := make([]int, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			v, err := dbs[i%len(dbs)].CreateVersion(context.Background(), &kiln.NewVersion{
				Image: image, Tags: kiln.Tags{"racer": strconv.Itoa(i)},
				Provenance: kiln.Provenance{Packages: []kiln.Package{{Name: "pkg", Version: strconv.Itoa(i), Architecture: "all"}}},
			})
			errs[i] = err
			if err == nil {
				nums[i] = v.Number
			}
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("CreateVersion #%d: %v", i, err)
		}
	}
	return nums
}

// checkNumbers fails unless got and the database both hold exactly 1..n.
func checkNumbers(t *testing.T, e *env, image string, got []int, n int) {
	t.Helper()
	want := make([]int, n)
	for i := range want {
		want[i] = i + 1
	}
	if got != nil {
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("returned numbers are not 1..%d: %s", n, describeGaps(got))
		}
	}
	var stored []int
	rows, err := e.raw.Query(`SELECT v.number FROM versions v JOIN images i ON i.id = v.image_id WHERE i.name = '` + image + `' ORDER BY v.number`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k int
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, k)
	}
	if !slices.Equal(stored, want) {
		t.Errorf("stored numbers are not 1..%d: %s", n, describeGaps(stored))
	}
	img, err := e.FindImage(context.Background(), image)
	if err != nil {
		t.Fatal(err)
	}
	if img.LatestNumber != n {
		t.Errorf("LatestNumber = %d, want %d", img.LatestNumber, n)
	}
	c := e.counts(t)
	if c["version_history"] != 2*n || c["version_packages"] != n || c["provenance"] != n {
		t.Errorf("row counts %v; want %d history, packages and provenance rows", c, n)
	}
}

func describeGaps(nums []int) string {
	seen := map[int]int{}
	for _, k := range nums {
		seen[k]++
	}
	var dups, missing []int
	for k, c := range seen {
		if c > 1 {
			dups = append(dups, k)
		}
	}
	for k := 1; k <= len(nums); k++ {
		if seen[k] == 0 {
			missing = append(missing, k)
		}
	}
	slices.Sort(dups)
	return fmt.Sprintf("%d numbers, duplicates %v, missing %v", len(nums), dups, missing)
}

func TestVersionNumbersConcurrentGoroutines(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		mkImage(t, e.DB, "appserver")
		mkImage(t, e.DB, "basic-linux")
		nums := createConcurrently(t, "appserver", racers, e.DB)
		checkNumbers(t, e, "appserver", nums, racers)
		if v := mkVersion(t, e.DB, &kiln.NewVersion{Image: "basic-linux"}); v.Number != 1 {
			t.Errorf("another image's numbering moved: its first version is %d", v.Number)
		}
	})
}

func TestVersionNumbersConcurrentHandles(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		mkImage(t, e.DB, "appserver")
		dbs := []*DB{e.DB, e.reopen(t), e.reopen(t), e.reopen(t)}
		nums := createConcurrently(t, "appserver", racers, dbs...)
		checkNumbers(t, e, "appserver", nums, racers)
	})
}

// helperEnv names the database a helper process races on; see
// TestHelperProcessCreateVersions.
const helperEnv = "KILN_STORE_TEST_HELPER_URL"

func TestVersionNumbersConcurrentProcesses(t *testing.T) {
	const procs = 4
	eachBackend(t, func(t *testing.T, e *env) {
		mkImage(t, e.DB, "appserver")
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmds := make([]*exec.Cmd, procs)
		outs := make([][]byte, procs)
		var wg sync.WaitGroup
		for p := range procs {
			cmds[p] = exec.Command(exe)
			cmds[p].Env = append(os.Environ(), helperEnv+"="+e.url, "KILN_STORE_TEST_HELPER_N="+strconv.Itoa(racers/procs))
			wg.Go(func() { outs[p], err = cmds[p].CombinedOutput() })
		}
		wg.Wait()
		for p, c := range cmds {
			if !c.ProcessState.Success() {
				t.Fatalf("helper process %d: %s\n%s", p, c.ProcessState, outs[p])
			}
		}
		checkNumbers(t, e, "appserver", nil, racers)
	})
}

// helperCreateVersions is the body of the processes
// TestVersionNumbersConcurrentProcesses starts (see TestMain): it opens the
// database at u and races n CreateVersion calls. It returns the exit code.
func helperCreateVersions(u string, n int) int {
	db, err := Open(context.Background(), u, "", nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: open:", err)
		return 1
	}
	defer db.Close()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if _, err := db.CreateVersion(context.Background(), &kiln.NewVersion{Image: "appserver",
				Tags:       kiln.Tags{"racer": strconv.Itoa(i)},
				Provenance: kiln.Provenance{Packages: []kiln.Package{{Name: "pkg", Version: strconv.Itoa(i), Architecture: "all"}}},
			}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Fprintln(os.Stderr, "helper: CreateVersion:", err)
		return 1
	}
	return 0
}
