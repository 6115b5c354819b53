package local

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
)

// idRE is what an instance id may be: it names a directory under
// instances/ and goes into file names, so no slashes and no "..".
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// validateID refuses an id idRE does not allow, naming field.
func validateID(field, id string) error {
	if !idRE.MatchString(id) || strings.Contains(id, "..") {
		return kiln.FieldErrorf(kiln.EINVALID, field, "instance id %q must be 1–128 letters, digits, '.', '_' or '-', starting with a letter or digit", id)
	}
	return nil
}

// instanceDir is where everything of instance id lives.
func (p *Platform) instanceDir(id string) string {
	return filepath.Join(p.dataDir, "instances", id)
}

// machineName is unique on the host for this data directory and id, so that
// two data directories (two kiln setups, parallel tests) never collide on
// nspawn machine or network namespace names.
func (p *Platform) machineName(id string) string {
	h := sha256.Sum256([]byte(p.dataDir + "\x00" + id))
	return "kiln-" + hex.EncodeToString(h[:6])
}

// UpperDir is the directory that holds everything the instance changed in
// its root filesystem (overlayfs upper layer: whiteouts mark deletions).
func (p *Platform) UpperDir(id string) string {
	return filepath.Join(p.instanceDir(id), upperDir)
}

// LowerDir is the image's root filesystem the instance runs on: the
// unpacked artifact in the rootfs cache, the overlay's read-only lower
// layer, which the cache keeps while the instance exists; for a layered
// artifact, a read-only overlay of its cached layers mounted at
// instances/<id>/lower (until Destroy). Drift detection compares UpperDir
// with it. ENOTFOUND when the instance does not exist on this machine or
// its image's tree is gone from the cache.
func (p *Platform) LowerDir(id string) (string, error) {
	rec, _, err := p.load(id)
	if err != nil {
		return "", err
	}
	if len(rec.Lowers) > 0 {
		return p.lowerView(id, rec.Lowers)
	}
	if rec.Lower == "" {
		return "", kiln.Errorf(kiln.EINTERNAL, "the record of instance %s does not name its image's root filesystem; destroy the instance and launch it again", id)
	}
	if fi, err := os.Stat(rec.Lower); err != nil || !fi.IsDir() {
		return "", kiln.Errorf(kiln.ENOTFOUND, "the image's root filesystem of instance %s (%s) is gone from the rootfs cache; destroy the instance and launch it again", id, rec.Lower)
	}
	return rec.Lower, nil
}

// load reads an instance's record and whether its supervisor is alive.
func (p *Platform) load(id string) (*record, bool, error) {
	if err := validateID("id", id); err != nil {
		return nil, false, err
	}
	dir := p.instanceDir(id)
	rec, err := readRecord(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, kiln.Errorf(kiln.ENOTFOUND, "instance %s does not exist on the local platform", id)
	}
	if err != nil {
		return nil, false, err
	}
	live, err := instancedir.Supervised(dir)
	if err != nil {
		return nil, false, err
	}
	return rec, live, nil
}
