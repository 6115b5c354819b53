package local

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
)

// SystemCredentials is where systemd inside an instance keeps the
// credentials systemd-nspawn gave it.
const SystemCredentials = instancedir.SystemCredentials

// CredentialDrift compares the credentials a running instance holds in
// SystemCredentials with the content hashes recorded when it was
// launched: a changed one is "changed", a missing one "deleted", one not
// delivered "added", each with its path inside the instance. An instance
// that is not running holds no credentials and reports none; nor does one
// launched without configuration and holding none.
func (p *Platform) CredentialDrift(ctx context.Context, id string) ([]kiln.DriftEntry, error) {
	rec, live, err := p.load(id)
	if err != nil {
		return nil, err
	}
	if !live || rec.State != kiln.InstanceRunning || !instancedir.Alive(rec.LeaderPID, rec.LeaderStart) {
		return nil, nil
	}
	var out, errb bytes.Buffer
	code, err := p.Exec(ctx, id, []string{"/bin/sh", "-c", instancedir.HashCredentials}, kiln.ExecIO{Stdout: &out, Stderr: &errb})
	if err != nil {
		return nil, fmt.Errorf("hash the credentials in %s: %w", id, err)
	}
	if code != 0 {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "hash the credentials in %s: exit %d: %s; the image needs sh and sha256sum (coreutils)",
			id, code, strings.TrimSpace(errb.String()))
	}
	now, err := instancedir.ParseHashes(out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("hash the credentials in %s: %w", id, err)
	}
	for _, name := range rec.Credentials {
		if _, ok := rec.CredentialHashes[name]; !ok {
			delete(now, name) // launched before kiln recorded hashes: unknown
		}
	}
	return instancedir.CompareCredentials(rec.CredentialHashes, now), nil
}
