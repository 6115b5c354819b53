package instancedir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

func TestFailureRoundTrip(t *testing.T) {
	roundTrip := func(err error) error {
		r, w, perr := os.Pipe()
		if perr != nil {
			t.Fatal(perr)
		}
		defer r.Close()
		ReportFailure(w, err)
		b := make([]byte, 4096)
		n, _ := r.Read(b)
		return decodeFailure(strings.TrimSpace(string(b[:n])))
	}
	in := kiln.Errorf(kiln.ECONFLICT, "cannot forward 127.0.0.1:80: address in use;\nchoose another")
	out := roundTrip(in)
	if kiln.ErrorCode(out) != kiln.ECONFLICT || kiln.ErrorMessage(out) != in.Message {
		t.Errorf("round trip: %q (%s)", kiln.ErrorMessage(out), kiln.ErrorCode(out))
	}
	plain := roundTrip(errors.New("mount: permission denied"))
	if kiln.ErrorCode(plain) != kiln.EINTERNAL || kiln.ErrorMessage(plain) != "mount: permission denied" {
		t.Errorf("plain error: %q (%s)", kiln.ErrorMessage(plain), kiln.ErrorCode(plain))
	}
	if kiln.ErrorCode(decodeFailure("garbage")) != kiln.EINTERNAL {
		t.Error("garbage should decode as internal")
	}
}

func TestReadProcStat(t *testing.T) {
	st, err := ReadProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PPID != os.Getppid() || st.Start == 0 {
		t.Errorf("ReadProcStat(self) = %+v; ppid want %d", st, os.Getppid())
	}
	if !Alive(os.Getpid(), st.Start) || Alive(os.Getpid(), st.Start+1) {
		t.Error("Alive must match the start time")
	}
}

func TestRecordAndLock(t *testing.T) {
	dir := t.TempDir()
	type rec struct{ ID string }
	if err := WriteRecord(dir, &rec{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	var got rec
	if err := ReadRecord(dir, &got); err != nil || got.ID != "a" {
		t.Fatalf("ReadRecord: %+v %v", got, err)
	}
	f, err := TryLock(dir)
	if err != nil || f == nil {
		t.Fatalf("TryLock: %v %v", f, err)
	}
	if live, err := Supervised(dir); err != nil || !live {
		t.Errorf("Supervised while locked: %v %v", live, err)
	}
	f.Close()
	if live, err := Supervised(dir); err != nil || live {
		t.Errorf("Supervised after unlock: %v %v", live, err)
	}
	if live, err := Supervised(filepath.Join(dir, "gone")); err != nil || live {
		t.Errorf("Supervised of a removed directory: %v %v", live, err)
	}
	if err := os.WriteFile(filepath.Join(dir, SupervisorPID), []byte("42\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if SupervisorOf(dir, 0) != 42 || SupervisorOf(dir, 7) != 7 {
		t.Error("SupervisorOf: the recorded PID first, else the pid file")
	}
}

func TestCredentials(t *testing.T) {
	dir := t.TempDir()
	cfg := &kiln.LaunchConfig{Credentials: []kiln.Credential{{Name: "banner.txt", Data: []byte("hi")}, {Name: "a-rather-long-credential-name", Data: []byte("x")}}}
	if _, _, err := WriteCredentials(dir, cfg, 28); kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), "longer than the 28") {
		t.Fatalf("long name: %v", err)
	}
	os.RemoveAll(filepath.Join(dir, CredentialsDir))
	names, hashes, err := WriteCredentials(dir, cfg, 0)
	if err != nil || len(names) != 2 {
		t.Fatal(names, err)
	}
	fi, err := os.Stat(filepath.Join(dir, CredentialsDir, "banner.txt"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credential file mode: %v %v", fi, err)
	}
	now, err := ParseHashes([]byte(strings.TrimPrefix(hashes["banner.txt"], "sha256:") + "  banner.txt\n" + strings.Repeat("0", 64) + "  added\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := CompareCredentials(hashes, now)
	if len(d) != 2 || d[0].Path != SystemCredentials+"/a-rather-long-credential-name" || d[0].Kind != kiln.DriftDeleted ||
		d[1].Path != SystemCredentials+"/added" || d[1].Kind != kiln.DriftAdded {
		t.Errorf("drift: %+v", d)
	}
	if err := RemoveCredentials(dir); err != nil {
		t.Fatal(err)
	}
}
