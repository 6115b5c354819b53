package instancedir

import (
	"bufio"
	"bytes"
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

// SystemCredentials is where systemd inside an instance keeps the system
// credentials its platform gave it (systemd-nspawn's, or QEMU's fw_cfg
// ones), for units to load with LoadCredential=.
const SystemCredentials = "/run/credentials/@system"

// credentialNameRE is a credential name systemd accepts that is also a
// plain file name.
var credentialNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// WriteCredentials writes a launch configuration's credentials into dir's
// CredentialsDir (0700, each file 0600, so only root on the host reads
// them: never a command line) and returns their names and their content
// hashes ("sha256:…" by name) for drift detection. maxName bounds a
// name's length where the platform's channel does (0: systemd's 64).
func WriteCredentials(dir string, cfg *kiln.LaunchConfig, maxName int) ([]string, map[string]string, error) {
	cdir := filepath.Join(dir, CredentialsDir)
	if err := os.Mkdir(cdir, 0o700); err != nil {
		return nil, nil, err
	}
	names := make([]string, 0, len(cfg.Credentials))
	hashes := make(map[string]string, len(cfg.Credentials))
	for _, c := range cfg.Credentials {
		if !credentialNameRE.MatchString(c.Name) {
			return nil, nil, kiln.FieldErrorf(kiln.EINVALID, "config", "credential name %q is not allowed; use letters, digits and ._-", c.Name)
		}
		if maxName > 0 && len(c.Name) > maxName {
			return nil, nil, kiln.FieldErrorf(kiln.EINVALID, "config", "credential name %q is longer than the %d characters this platform delivers; shorten the file name", c.Name, maxName)
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

// RemoveCredentials removes the host copy of the credentials once the
// platform has read them.
func RemoveCredentials(dir string) error {
	return os.RemoveAll(filepath.Join(dir, CredentialsDir))
}

// HashCredentials is a shell script that lists every regular file in
// SystemCredentials with its content hash, as sha256sum prints it. It
// needs sh and sha256sum (coreutils, essential in Debian) in the image.
const HashCredentials = `cd ` + SystemCredentials + ` 2>/dev/null || exit 0
for f in * .[!.]*; do if [ -f "$f" ] && [ ! -L "$f" ]; then sha256sum -- "$f" || exit 1; fi; done`

// ParseHashes reads HashCredentials' output: content hash by name.
func ParseHashes(out []byte) (map[string]string, error) {
	now := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		sum, name, ok := strings.Cut(strings.TrimPrefix(sc.Text(), `\`), "  ")
		if !ok {
			return nil, fmt.Errorf("unexpected sha256sum output %q", sc.Text())
		}
		now[name] = "sha256:" + sum
	}
	return now, nil
}

// CompareCredentials reports how the credentials found now (content hash
// by name) differ from those delivered, as files in SystemCredentials,
// sorted by path: a changed one is "changed", a missing one "deleted",
// one not delivered "added".
func CompareCredentials(was, now map[string]string) []kiln.DriftEntry {
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
