package rollout

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/kiln-project/kiln"
)

// GuestDrift is what a platform offers for drift detection when kiln
// cannot read an instance's files from the host (the VM platform, whose
// instances write into a disk image): commands run inside the running
// instance, and the credentials delivered at launch.
type GuestDrift interface {
	Exec(ctx context.Context, id string, argv []string, stdio kiln.ExecIO) (int, error)
	// CredentialDrift reports how the configuration delivered at launch
	// differs from what the running instance holds now.
	CredentialDrift(ctx context.Context, id string) ([]kiln.DriftEntry, error)
	// FileDrift compares the running instance's files with its image's
	// root file system by the rules CompareOverlay applies to an overlay
	// (internal/filedrift): the differences, and how many volatile paths
	// changed.
	FileDrift(ctx context.Context, id string) ([]kiln.DriftEntry, int, error)
}

// CompareGuest reports how a running instance differs from its image,
// asking inside it: its files against the image's root file system (as
// CompareOverlay reports them), installed packages (dpkg's status)
// against the version's manifest, and the delivered credentials.
func CompareGuest(ctx context.Context, g GuestDrift, id string, manifest []kiln.Package) (*kiln.Drift, error) {
	var out, errb bytes.Buffer
	code, err := g.Exec(ctx, id, []string{"cat", "/" + dpkgStatus}, kiln.ExecIO{Stdout: &limitWriter{w: &out, n: maxStatus}, Stderr: &errb})
	if err != nil {
		return nil, fmt.Errorf("read the packages of %s: %w", id, err)
	}
	if code != 0 {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "read the packages of %s: exit %d: %s", id, code, strings.TrimSpace(errb.String()))
	}
	was := make(map[string]string, len(manifest))
	for _, p := range manifest {
		was[p.Name] = p.Version
	}
	files, ignored, err := g.FileDrift(ctx, id)
	if err != nil {
		return nil, err
	}
	d := &kiln.Drift{InstanceID: id, Files: append([]kiln.DriftEntry{}, files...), Ignored: ignored}
	if len(manifest) > 0 {
		d.Packages = comparePackages(was, installed(out.Bytes()))
	} else {
		d.Packages = []kiln.DriftEntry{}
	}
	creds, err := g.CredentialDrift(ctx, id)
	if err != nil {
		return nil, err
	}
	d.Files = append(d.Files, creds...)
	return d, nil
}

// limitWriter keeps the first n bytes written to it and drops the rest.
type limitWriter struct {
	w io.Writer
	n int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return len(p), nil
	}
	q := p
	if int64(len(q)) > l.n {
		q = q[:l.n]
	}
	l.n -= int64(len(q))
	if _, err := l.w.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}
