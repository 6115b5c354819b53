package local

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/kiln-project/kiln"
)

// credentialNameRE is a credential name systemd accepts that is also a
// plain file name.
var credentialNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// SystemCredentials is where systemd inside an instance keeps the
// credentials systemd-nspawn gave it.
const SystemCredentials = "/run/credentials/@system"

// writeCredentials writes a launch configuration's credentials into the
// instance directory (a 0700 directory, each file 0600, so only root on
// the host reads them) and returns their names for --load-credential and
// their content hashes ("sha256:…" by name) for drift detection.
// The supervisor removes them once systemd-nspawn has read them.
func writeCredentials(dir string, cfg *kiln.LaunchConfig) ([]string, map[string]string, error) {
	cdir := filepath.Join(dir, credentialsDir)
	if err := os.Mkdir(cdir, 0o700); err != nil {
		return nil, nil, err
	}
	names := make([]string, 0, len(cfg.Credentials))
	hashes := make(map[string]string, len(cfg.Credentials))
	for _, c := range cfg.Credentials {
		if !credentialNameRE.MatchString(c.Name) {
			return nil, nil, kiln.FieldErrorf(kiln.EINVALID, "config", "credential name %q is not allowed; use letters, digits and ._-", c.Name)
		}
		f, err := os.OpenFile(filepath.Join(cdir, c.Name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("write credential %s: %w", c.Name, err)
		}
		_, werr := f.Write(c.Data)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, nil, fmt.Errorf("write credential %s: %w", c.Name, werr)
		}
		names = append(names, c.Name)
		sum := sha256.Sum256(c.Data)
		hashes[c.Name] = "sha256:" + hex.EncodeToString(sum[:])
	}
	return names, hashes, nil
}

// hashCredentials lists every regular file in SystemCredentials with its
// content hash. It needs sh and sha256sum (coreutils, essential in
// Debian) in the image.
const hashCredentials = `cd ` + SystemCredentials + ` 2>/dev/null || exit 0
for f in * .[!.]*; do if [ -f "$f" ] && [ ! -L "$f" ]; then sha256sum -- "$f" || exit 1; fi; done`

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
	if !live || rec.State != kiln.InstanceRunning || !alive(rec.LeaderPID, rec.LeaderStart) {
		return nil, nil
	}
	var out, errb bytes.Buffer
	code, err := p.Exec(ctx, id, []string{"/bin/sh", "-c", hashCredentials}, kiln.ExecIO{Stdout: &out, Stderr: &errb})
	if err != nil {
		return nil, fmt.Errorf("hash the credentials in %s: %w", id, err)
	}
	if code != 0 {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "hash the credentials in %s: exit %d: %s; the image needs sh and sha256sum (coreutils)",
			id, code, strings.TrimSpace(errb.String()))
	}
	now := map[string]string{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		sum, name, ok := strings.Cut(strings.TrimPrefix(sc.Text(), `\`), "  ")
		if !ok {
			return nil, fmt.Errorf("hash the credentials in %s: unexpected sha256sum output %q", id, sc.Text())
		}
		now[name] = "sha256:" + sum
	}
	for _, name := range rec.Credentials {
		if _, ok := rec.CredentialHashes[name]; !ok {
			delete(now, name) // launched before kiln recorded hashes: unknown
		}
	}
	return compareCredentials(rec.CredentialHashes, now), nil
}

// compareCredentials reports how the credentials found now (content hash
// by name) differ from those delivered, sorted by path.
func compareCredentials(was, now map[string]string) []kiln.DriftEntry {
	out := []kiln.DriftEntry{}
	for name, h := range now {
		switch old, ok := was[name]; {
		case !ok:
			out = append(out, kiln.DriftEntry{Kind: kiln.DriftAdded, Path: SystemCredentials + "/" + name})
		case old != h:
			out = append(out, kiln.DriftEntry{Kind: kiln.DriftChanged, Path: SystemCredentials + "/" + name})
		}
	}
	for name := range was {
		if _, ok := now[name]; !ok {
			out = append(out, kiln.DriftEntry{Kind: kiln.DriftDeleted, Path: SystemCredentials + "/" + name})
		}
	}
	slices.SortFunc(out, func(a, b kiln.DriftEntry) int { return strings.Compare(a.Path, b.Path) })
	return out
}
