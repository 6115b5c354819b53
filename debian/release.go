package debian

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
)

// Release is a Debian suite's Release file as a mirror serves it: which
// snapshot of the archive a bootstrap draws from.
type Release struct {
	// Mirror and Suite are what the file was fetched for, as given to
	// FetchRelease; FetchIndex reads the same archive.
	Mirror, Suite string
	// URL is the file's address (InRelease, or Release without it).
	URL string
	// Date is the Release file's Date field.
	Date time.Time
	// Digest is "sha256:…" of the file's bytes; a new mirror snapshot
	// changes it.
	Digest string
}

// FetchRelease downloads <mirror>/dists/<suite>/InRelease (or Release when
// the mirror has no InRelease) and reads its date. It does not check the
// signature: the digest only tells one snapshot from the next. A nil client
// uses one with a 30-second timeout.
func FetchRelease(ctx context.Context, client *http.Client, mirror, suite string) (*Release, error) {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	base := strings.TrimRight(mirror, "/") + "/dists/" + suite + "/"
	var lastErr error
	for _, name := range []string{"InRelease", "Release"} {
		u := base + name
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "debian.mirror", "mirror %q is not a URL: %v", mirror, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			lastErr = err
			continue
		}
		if resp.StatusCode != http.StatusOK {
			lastErr = fmt.Errorf("%s: %s", u, resp.Status)
			continue
		}
		rel := &Release{Mirror: mirror, Suite: suite, URL: u}
		sum := sha256.Sum256(body)
		rel.Digest = "sha256:" + hex.EncodeToString(sum[:])
		rel.Date, err = releaseDate(body)
		if err != nil {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "%s is not a Debian Release file (%v); check debian.mirror and debian.suite", u, err)
		}
		return rel, nil
	}
	return nil, &kiln.Error{Code: kiln.EUNAVAILABLE, Field: "debian.mirror",
		Message: fmt.Sprintf("cannot read the Release file of suite %q from mirror %s: %v; check the mirror URL, the suite name and the network", suite, mirror, lastErr),
		Err:     lastErr}
}

// releaseDate reads the Date field of a Release file (after the PGP
// header of an InRelease file).
func releaseDate(b []byte) (time.Time, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "Date:"); ok {
			v = strings.TrimSpace(v)
			for _, layout := range []string{time.RFC1123, time.RFC1123Z, "Mon, 2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 2006 15:04:05 -0700"} {
				if t, err := time.Parse(layout, v); err == nil {
					return t.UTC(), nil
				}
			}
			return time.Time{}, fmt.Errorf("unreadable Date %q", v)
		}
		if line == "" && sc.Err() == nil {
			// The signed header of InRelease precedes the fields; keep going.
			continue
		}
	}
	return time.Time{}, fmt.Errorf("no Date field")
}
