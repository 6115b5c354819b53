package vm

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
)

// SystemCredentials is where systemd inside the guest keeps the
// credentials it imported from QEMU's fw_cfg.
const SystemCredentials = instancedir.SystemCredentials

// CredentialDrift compares the credentials a running guest holds in
// SystemCredentials with the content hashes recorded when it was
// launched: a changed one is "changed", a missing one "deleted", one not
// delivered "added". An instance that is not running reports none.
func (p *Platform) CredentialDrift(ctx context.Context, id string) ([]kiln.DriftEntry, error) {
	rec, live, err := p.load(id)
	if err != nil {
		return nil, err
	}
	if !live || rec.State != kiln.InstanceRunning || !instancedir.Alive(rec.QemuPID, rec.QemuStart) {
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
	if rec.CredentialHashes == nil {
		rec.CredentialHashes = map[string]string{}
	}
	return instancedir.CompareCredentials(rec.CredentialHashes, now), nil
}
