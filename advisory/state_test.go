package advisory

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-project/kiln"
)

// trackerFixture parses one of the shared tracker fixtures.
func trackerFixture(t *testing.T, file string) map[string]*kiln.Advisory {
	t.Helper()
	path := filepath.Join(needFixture(t, "debian-tracker"), file)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	advs, err := ParseDebianTracker(file, data)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*kiln.Advisory{}
	for _, a := range advs {
		out[a.ID] = a
	}
	return out
}

func matchOne(t *testing.T, adv *kiln.Advisory, release, pkg, version string) Finding {
	t.Helper()
	fs, err := Match(adv, release, []kiln.Package{{Name: pkg, Version: version}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 {
		t.Fatalf("%s %s %s: %d findings, want 1: %+v", adv.ID, release, pkg, len(fs), fs)
	}
	return fs[0]
}

// The real tracker records with Debian's triage: an open issue rated
// unimportant (apparmor CVE-2016-1585 in bookworm), one in a release out
// of security support (chromium CVE-2022-0456 in buster), and urgencies
// that are NVD's (prototypejs "high**").
func TestTriageFromTrackerFixtures(t *testing.T) {
	apparmor := trackerFixture(t, "google-osv.dev__debian_security_tracker_mock.json")["CVE-2016-1585"]
	f := matchOne(t, apparmor, "bookworm", "apparmor", "3.0.8-3")
	if !f.Affected || f.State != StateUnimportant {
		t.Errorf("apparmor in bookworm: affected %v state %q, want affected, unimportant (%s)", f.Affected, f.State, f.Reason)
	}
	if DefaultInclude.Counts(f) {
		t.Error("an unimportant finding counts by default; Debian ships no DSA for it")
	}
	inc, err := ParseInclude("--include", []string{"unimportant"})
	if err != nil || !inc.Counts(f) {
		t.Errorf("--include unimportant does not count it (%v)", err)
	}
	if f := matchOne(t, apparmor, "trixie", "apparmor", "3.0.12-1"); f.Affected {
		t.Errorf("apparmor 3.0.12-1 in trixie is fixed: %+v", f)
	}

	adv := trackerFixture(t, "anchore-vunnel__debian.json")
	chromium := adv["CVE-2022-0456"]
	f = matchOne(t, chromium, "buster", "chromium", "90.0.4430.212-1~deb10u1")
	if !f.Affected || f.State != StateEndOfLife || DefaultInclude.Counts(f) {
		t.Errorf("chromium in buster: %+v; want affected, end-of-life, not counted by default", f)
	}
	for _, p := range chromium.Packages {
		if p.Release == "buster" && p.FixedLater != "bullseye 98.0.4758.80-1~deb11u1" {
			t.Errorf("chromium buster fixed_later = %q, want the bullseye fix", p.FixedLater)
		}
	}
	f = matchOne(t, chromium, "bullseye", "chromium", "90.0.4430.212-1")
	if !f.Affected || f.State != "" || !DefaultInclude.Counts(f) {
		t.Errorf("chromium in bullseye before the fix: %+v; want affected and counted", f)
	}

	proto := adv["CVE-2008-7220"]
	f = matchOne(t, proto, "buster", "prototypejs", "1.6.0.1-1")
	if !f.Affected || f.Severity != "high" || !f.SeverityNVD || !DefaultInclude.Counts(f) {
		t.Errorf("prototypejs high**: %+v; want affected, severity high from NVD, counted", f)
	}
}

func TestTriageNoDSA(t *testing.T) {
	advs, err := ParseDebianTracker("nodsa.json", readTestdata(t, "tracker/nodsa.json"))
	if err != nil {
		t.Fatal(err)
	}
	fast := advs[0]
	if d := slowParseTracker(t, "nodsa.json", readTestdata(t, "tracker/nodsa.json")); len(d) != 1 || len(d[0].Packages) != len(fast.Packages) {
		t.Fatalf("slow path: %+v", d)
	}
	tests := []struct {
		release string
		state   State
		note    string
	}{
		{"bookworm", StatePostponed, "Minor issue"},
		{"bullseye", StateNoDSA, "Minor issue"},
		{"buster", StateIgnored, "Not worth the churn"},
	}
	for _, tt := range tests {
		f := matchOne(t, fast, tt.release, "openssl", "1.0-1")
		if !f.Affected || f.State != tt.state {
			t.Errorf("%s: affected %v state %q, want %q (%s)", tt.release, f.Affected, f.State, tt.state, f.Reason)
		}
		if DefaultInclude.Counts(f) {
			t.Errorf("%s: a no-dsa finding counts by default", tt.release)
		}
		inc, _ := ParseInclude("--include", []string{"no-dsa"})
		if !inc.Counts(f) {
			t.Errorf("%s: --include no-dsa leaves it out", tt.release)
		}
	}
	only, _ := ParseInclude("--include", []string{"postponed"})
	if f := matchOne(t, fast, "buster", "openssl", "1.0-1"); only.Counts(f) {
		t.Error("--include postponed counts an ignored finding")
	}
	if _, err := ParseInclude("--include", []string{"affected,bogus"}); err == nil || kiln.ErrorField(err) != "--include" {
		t.Errorf("unknown state: %v", err)
	}
	bad := `{"a": {"CVE-1": {"releases": {"bookworm": {"status": "open", "nodsa": "x", "nodsa_reason": "later"}}}}}`
	if _, err := ParseDebianTracker("bad.json", []byte(bad)); err == nil || kiln.ErrorField(err) != "bad.json:1:92: a.CVE-1.releases.bookworm.nodsa_reason" {
		t.Errorf("unknown nodsa_reason: field %q (%v)", kiln.ErrorField(err), err)
	}
}
