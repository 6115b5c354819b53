package rollout

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
)

// TestDriftOfInstance boots an instance, checks that a fresh one shows no
// drift (only volatile paths changed), then changes it by hand and checks
// each change is reported, a changed delivered credential among them.
func TestDriftOfInstance(t *testing.T) {
	img := variant(t, nil)
	e := newEnv(t, []string{img}, 1, 1, 0)
	ctx := context.Background()
	v, err := e.db.FindVersion(ctx, kiln.VersionRef{Image: "appserver", Number: 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &kiln.LaunchConfig{Digest: "sha256:test", Source: "test", Credentials: []kiln.Credential{{Name: "banner.txt", Data: []byte("as delivered\n")}}}
	if _, err := e.plat.Launch(ctx, kiln.LaunchSpec{ID: "drift-1", Name: "drift-1", Artifact: *v.Provenance.Artifact, Timeout: time.Minute, Config: cfg}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.plat.Destroy(context.Background(), "drift-1") })
	drift := func() *kiln.Drift {
		t.Helper()
		d, err := CompareInstance(ctx, e.plat, "drift-1", nil)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := drift(); d.Drifted() {
		t.Errorf("a freshly booted instance shows drift (add the volatile paths to filedrift.VolatilePaths): %+v", d)
	}

	script := `echo new > /etc/added.conf && echo changed >> /srv/www/index.html && rm /etc/issue && mkdir /opt/tools &&
		sed -i '/^Package: busybox$/,/^$/ s/^Version: .*/Version: 9:9.9-hand-built/' /var/lib/dpkg/status &&
		echo noise >> /var/log/kiln-test.log &&
		cp -a /run/credentials/@system/. /tmp/creds && mount -t tmpfs tmpfs /run/credentials/@system &&
		cp -a /tmp/creds/. /run/credentials/@system/ && echo by hand > /run/credentials/@system/banner.txt`
	if code, err := e.plat.Exec(ctx, "drift-1", []string{"sh", "-c", script}, kiln.ExecIO{}); err != nil || code != 0 {
		t.Fatalf("change the instance: status %d, %v", code, err)
	}
	d := drift()
	var got []string
	for _, f := range d.Files {
		got = append(got, string(f.Kind)+" "+f.Path)
	}
	for _, want := range []string{"added /etc/added.conf", "changed /srv/www/index.html", "deleted /etc/issue", "added /opt/tools/", "changed /var/lib/dpkg/status",
		"changed /run/credentials/@system/banner.txt"} {
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

// TestDriftImageVolatile boots an image that carries its own volatile
// patterns (definition.VolatileFile, as the build writes it): paths they
// match are counted as ignored, not reported, while a path next to them
// still is — and an instance cannot widen its own rule by writing the file.
func TestDriftImageVolatile(t *testing.T) {
	rule := definition.FormatVolatile("appserver", []string{"/srv/scratch", "/opt/**/*.pid"})
	img := variant(t, map[string]string{strings.TrimPrefix(definition.VolatileFile, "/"): string(rule)})
	e := newEnv(t, []string{img}, 1, 1, 0)
	ctx := context.Background()
	v, err := e.db.FindVersion(ctx, kiln.VersionRef{Image: "appserver", Number: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.plat.Launch(ctx, kiln.LaunchSpec{ID: "drift-2", Name: "drift-2", Artifact: *v.Provenance.Artifact, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.plat.Destroy(context.Background(), "drift-2") })
	before, err := CompareInstance(ctx, e.plat, "drift-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if before.Drifted() {
		t.Fatalf("a freshly booted instance shows drift: %+v", before)
	}

	script := `mkdir -p /srv/scratch/sessions /opt/app/run && echo s > /srv/scratch/sessions/1 && echo 42 > /opt/app/run/app.pid &&
		echo kept > /opt/app/run/app.conf && echo /etc >> ` + definition.VolatileFile
	if code, err := e.plat.Exec(ctx, "drift-2", []string{"sh", "-c", script}, kiln.ExecIO{}); err != nil || code != 0 {
		t.Fatalf("change the instance: status %d, %v", code, err)
	}
	d, err := CompareInstance(ctx, e.plat, "drift-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range d.Files {
		got = append(got, string(f.Kind)+" "+f.Path)
	}
	all := strings.Join(got, "\n") + "\n"
	for _, want := range []string{"added /opt/app/", "added /opt/app/run/", "added /opt/app/run/app.conf", "changed " + definition.VolatileFile} {
		if !strings.Contains(all, want+"\n") {
			t.Errorf("drift files %q lack %q", got, want)
		}
	}
	for _, hidden := range []string{"/srv/scratch", "app.pid"} {
		if strings.Contains(all, hidden) {
			t.Errorf("drift files %q report %s, which the image's patterns make volatile", got, hidden)
		}
	}
	// /srv/scratch (one directory, skipped whole) and app.pid.
	if d.Ignored < before.Ignored+2 {
		t.Errorf("ignored %d after writing two volatile paths, %d before; want at least 2 more", d.Ignored, before.Ignored)
	}
}
