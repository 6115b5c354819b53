package local

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/kiln-project/kiln"
)

// credentialNameRE is a credential name systemd accepts that is also a
// plain file name.
var credentialNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// writeCredentials writes a launch configuration's credentials into the
// instance directory (a 0700 directory, each file 0600, so only root on
// the host reads them) and returns their names for --load-credential.
// The supervisor removes them once systemd-nspawn has read them.
func writeCredentials(dir string, cfg *kiln.LaunchConfig) ([]string, error) {
	cdir := filepath.Join(dir, credentialsDir)
	if err := os.Mkdir(cdir, 0o700); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(cfg.Credentials))
	for _, c := range cfg.Credentials {
		if !credentialNameRE.MatchString(c.Name) {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "config", "credential name %q is not allowed; use letters, digits and ._-", c.Name)
		}
		f, err := os.OpenFile(filepath.Join(cdir, c.Name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("write credential %s: %w", c.Name, err)
		}
		_, werr := f.Write(c.Data)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, fmt.Errorf("write credential %s: %w", c.Name, werr)
		}
		names = append(names, c.Name)
	}
	return names, nil
}
