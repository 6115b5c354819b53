package rollout

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// TestDriftOfInstance boots an instance, checks that a fresh one shows no
// drift (only volatile paths changed), then changes it by hand and checks
// each change is reported.
func TestDriftOfInstance(t *testing.T) {
	img := variant(t, nil)
	e := newEnv(t, []string{img}, 1, 1, 0)
	ctx := context.Background()
	v, err := e.db.FindVersion(ctx, kiln.VersionRef{Image: "appserver", Number: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.plat.Launch(ctx, kiln.LaunchSpec{ID: "drift-1", Name: "drift-1", Artifact: *v.Provenance.Artifact, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.plat.Destroy(context.Background(), "drift-1") })
	dirs := LocalDirs(e.plat.UpperDir)
	drift := func() *kiln.Drift {
		t.Helper()
		upper, lower, err := dirs("drift-1")
		if err != nil {
			t.Fatal(err)
		}
		d, err := CompareOverlay(ctx, upper, lower, nil)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := drift(); d.Drifted() {
		t.Errorf("a freshly booted instance shows drift (add the volatile paths to VolatilePaths): %+v", d)
	}

	script := `echo new > /etc/added.conf && echo changed >> /srv/www/index.html && rm /etc/issue && mkdir /opt/tools &&
		sed -i '/^Package: busybox$/,/^$/ s/^Version: .*/Version: 9:9.9-hand-built/' /var/lib/dpkg/status &&
		echo noise >> /var/log/kiln-test.log`
	if code, err := e.plat.Exec(ctx, "drift-1", []string{"sh", "-c", script}, kiln.ExecIO{}); err != nil || code != 0 {
		t.Fatalf("change the instance: status %d, %v", code, err)
	}
	d := drift()
	var got []string
	for _, f := range d.Files {
		got = append(got, string(f.Kind)+" "+f.Path)
	}
	for _, want := range []string{"added /etc/added.conf", "changed /srv/www/index.html", "deleted /etc/issue", "added /opt/tools/", "changed /var/lib/dpkg/status"} {
		if !strings.Contains(strings.Join(got, "\n")+"\n", want+"\n") {
			t.Errorf("drift files %q lack %q", got, want)
		}
	}
	if len(d.Packages) != 1 || d.Packages[0].Package != "busybox" || d.Packages[0].To != "9:9.9-hand-built" || d.Packages[0].Kind != kiln.DriftChanged {
		t.Errorf("drift packages = %+v, want busybox changed to 9:9.9-hand-built", d.Packages)
	}
	if d.Ignored == 0 {
		t.Error("nothing ignored: the log written should count as volatile")
	}
}
