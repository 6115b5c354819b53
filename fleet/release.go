package fleet

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/kiln-project/kiln"
)

// ReleaseFile is where kiln's builds write what an image is.
const ReleaseFile = "/etc/kiln-release"

// ParseRelease reads /etc/kiln-release: KEY=VALUE lines (image, version,
// name, semver, build_time, definition_digest, method, parent, base, and
// whatever a build step appended). Blank lines and # comments are skipped;
// image and version are required.
func ParseRelease(name string, data []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, kiln.FieldErrorf(kiln.EINVALID, fmt.Sprintf("%s:%d", name, line), "line %q is not KEY=VALUE", s)
		}
		out[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	if err := sc.Err(); err != nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, name, "cannot read: %v", err)
	}
	c := kiln.Checkin{Release: out}
	if _, err := c.Version(); err != nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, name, "%s; a kiln build writes image=NAME and version=N", kiln.ErrorMessage(err))
	}
	return out, nil
}
