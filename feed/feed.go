package feed

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/advisory"
)

// Limits on what a source may send. The tracker export is about 70 MB and
// the OSV Debian all.zip tens of MB today.
const (
	// MaxDownload bounds a tracker export or an archive.
	MaxDownload = 1 << 30
	// MaxRecord bounds one OSV record, a listing, or one archive entry.
	MaxRecord = 16 << 20
	// MaxListed bounds how many records a directory listing may name.
	MaxListed = 100_000
)

// Syncer fetches advisory sources into a store.
type Syncer struct {
	Store kiln.AdvisorySourceStore
	// Client makes the requests (nil: a client with a 10-minute timeout).
	Client *http.Client
	// TempDir holds archives while they are read ("" : os.TempDir()).
	TempDir string
	Logger  *slog.Logger
	// Clock says when a source is due (nil: time.Now).
	Clock kiln.Clock
	// Synced, when set, is told of every scheduled sync that changed the
	// advisories a source holds (kiln serve's autopilot looks again).
	Synced func(ctx context.Context, res *Result)
}

// Result is what one sync did.
type Result struct {
	Source string `json:"source"`
	// NotModified is set when the source answered 304: nothing was read.
	NotModified bool `json:"not_modified,omitempty"`
	// Read is how many advisories the source holds now.
	Read int `json:"read"`
	kiln.FeedImport
}

func (s *Syncer) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return &http.Client{Timeout: 10 * time.Minute}
}

func (s *Syncer) now() time.Time {
	if s.Clock != nil {
		return s.Clock()
	}
	return time.Now()
}

// Sync fetches one source now and imports it, all or nothing. On failure
// the source keeps its advisories, its last error says why, and the error
// is returned too.
//
// The source is read first, outside any transaction, into a spool file
// under TempDir (every parse error is found there); the store then imports
// the spool in one transaction, a chunk at a time. Neither step holds the
// source's advisories in memory, only their ids.
func (s *Syncer) Sync(ctx context.Context, f *kiln.AdvisoryFeed) (*Result, error) {
	res, sp, etag, lastMod, err := s.fetch(ctx, f)
	if sp != nil {
		defer sp.close()
	}
	if err == nil && !res.NotModified {
		res.FeedImport, err = s.Store.ReplaceFeedAdvisories(ctx, f.Name, sp.all(), etag, lastMod)
		res.Read = res.Held()
		if err != nil {
			err = fmt.Errorf("import: %w", err)
		}
	}
	if err != nil {
		err = fmt.Errorf("advisory source %s: %w", f.Name, err)
		msg := kiln.ErrorMessage(err)
		if kiln.ErrorField(err) != "" {
			msg = kiln.ErrorField(err) + ": " + msg
		}
		// Recorded without the caller's cancellation: a sync cut short by
		// shutdown still says so.
		if rerr := s.Store.RecordFeedCheck(context.WithoutCancel(ctx), f.Name, kiln.FeedCheck{Err: msg}); rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		return nil, err
	}
	if res.NotModified {
		if err := s.Store.RecordFeedCheck(ctx, f.Name, kiln.FeedCheck{}); err != nil {
			return nil, err
		}
		res.Read = f.Advisories
	}
	return res, nil
}

// fetch downloads and parses f into a spool. res.NotModified is set on a
// 304 (and the spool is nil). The caller closes a spool returned, also
// with an error.
func (s *Syncer) fetch(ctx context.Context, f *kiln.AdvisoryFeed) (res *Result, sp *spool, etag, lastMod string, err error) {
	res = &Result{Source: f.Name}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return nil, nil, "", "", err
	}
	if f.ETag != "" {
		req.Header.Set("If-None-Match", f.ETag)
	}
	if f.LastModified != "" {
		req.Header.Set("If-Modified-Since", f.LastModified)
	}
	resp, err := s.client().Do(req)
	if err != nil {
		return nil, nil, "", "", fmt.Errorf("unreachable: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		res.NotModified = true
		return res, nil, "", "", nil
	case http.StatusOK:
	default:
		return nil, nil, "", "", fmt.Errorf("GET %s: HTTP %s", f.URL, resp.Status)
	}
	etag, lastMod = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	body := &limited{r: resp.Body, n: MaxDownload, what: f.URL}
	var merge func(a, b *kiln.Advisory)
	if f.Kind == kiln.AdvisoryDebianTracker {
		merge = advisory.MergeTracker
	}
	if sp, err = newSpool(s.TempDir, merge); err != nil {
		return nil, nil, "", "", err
	}
	add := func(a *kiln.Advisory) error {
		if a.Source != f.Kind {
			return kiln.FieldErrorf(kiln.EINVALID, f.URL, "holds %s data (advisory %s), not %s; add the source with --kind %s", a.Source, a.ID, f.Kind, a.Source)
		}
		return sp.add(a)
	}
	switch f.Kind {
	case kiln.AdvisoryDebianTracker:
		err = advisory.EachDebianTracker(f.URL, body, func(advs []*kiln.Advisory) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			for _, a := range advs {
				if err := add(a); err != nil {
					return err
				}
			}
			return nil
		})
	case kiln.AdvisoryOSV:
		err = s.readOSV(ctx, f.URL, resp, body, add)
	default:
		err = kiln.FieldErrorf(kiln.EINVALID, "kind", "unknown advisory source kind %q", f.Kind)
	}
	if err != nil {
		return nil, sp, "", "", err
	}
	return res, sp, etag, lastMod, nil
}

// readOSV reads an OSV source: a zip archive of records (all.zip), one
// record, or a listing (HTML or JSON) of *.json records next to it. Each
// record goes to add as it is read.
func (s *Syncer) readOSV(ctx context.Context, u string, resp *http.Response, body io.Reader, add func(*kiln.Advisory) error) error {
	br := &peekReader{r: body}
	head, _ := br.peek(4)
	if bytes.Equal(head, []byte("PK\x03\x04")) || contentType(resp) == "application/zip" {
		return s.readZip(ctx, u, br, add)
	}
	data, err := io.ReadAll(&limited{r: br, n: MaxRecord, what: u})
	if err != nil {
		return err
	}
	if strings.HasPrefix(contentType(resp), "application/json") || looksLikeJSON(data) {
		if advisory.DetectFormat(data) == advisory.FormatOSV && bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
			a, err := advisory.ParseOSV(u, data)
			if err != nil {
				return err
			}
			return add(a)
		}
	}
	names, err := listing(u, data)
	if err != nil {
		return err
	}
	return s.readListed(ctx, u, names, add)
}

func contentType(resp *http.Response) string {
	t, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return t
}

func looksLikeJSON(data []byte) bool {
	t := bytes.TrimSpace(data)
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

var hrefRE = regexp.MustCompile(`(?i)href\s*=\s*["']([^"'#?]+\.json)["']`)

// listing returns the *.json names a directory listing links to: an HTML
// page's hrefs, or a JSON array of names (strings, or objects with a
// "name"), as web servers and object stores list directories.
func listing(u string, data []byte) ([]string, error) {
	var names []string
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '[' {
		var raw []json.RawMessage
		if err := json.Unmarshal(t, &raw); err != nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, u, "the listing is not a JSON array of names: %v", err)
		}
		for _, r := range raw {
			var n string
			if json.Unmarshal(r, &n) != nil {
				var o struct {
					Name string `json:"name"`
				}
				if json.Unmarshal(r, &o) != nil {
					return nil, kiln.FieldErrorf(kiln.EINVALID, u, "the listing holds %s; want names or objects with a name", r)
				}
				n = o.Name
			}
			if strings.HasSuffix(n, ".json") {
				names = append(names, n)
			}
		}
	} else {
		for _, m := range hrefRE.FindAllSubmatch(data, -1) {
			names = append(names, string(m[1]))
		}
	}
	if len(names) == 0 {
		return nil, kiln.FieldErrorf(kiln.EINVALID, u, "neither an OSV record, a zip archive of them, nor a listing of *.json records; point the source at one of those")
	}
	if len(names) > MaxListed {
		return nil, kiln.FieldErrorf(kiln.EINVALID, u, "the listing names %d records; the limit is %d (use the ecosystem's all.zip)", len(names), MaxListed)
	}
	return names, nil
}

// readListed fetches every record a listing names, resolved against the
// listing's URL, and gives each to add. Any failure fails the whole sync.
func (s *Syncer) readListed(ctx context.Context, base string, names []string, add func(*kiln.Advisory) error) error {
	bu, err := url.Parse(base)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(bu.Path, "/") && path.Ext(bu.Path) != "" {
		bu.Path = path.Dir(bu.Path) + "/"
	} else if !strings.HasSuffix(bu.Path, "/") {
		bu.Path += "/"
	}
	seen := map[string]string{}
	for _, n := range names {
		ru, err := bu.Parse(n)
		if err != nil {
			return kiln.FieldErrorf(kiln.EINVALID, base, "listed name %q: %v", n, err)
		}
		if ru.Host != bu.Host || ru.Scheme != bu.Scheme {
			return kiln.FieldErrorf(kiln.EINVALID, base, "listed record %s is on another server; a listing names records next to it", ru)
		}
		data, err := s.get(ctx, ru.String())
		if err != nil {
			return err
		}
		a, err := advisory.ParseOSV(ru.String(), data)
		if err != nil {
			return err
		}
		if prev, dup := seen[a.ID]; dup {
			return kiln.FieldErrorf(kiln.ECONFLICT, ru.String(), "advisory %s is also in %s; a source holds each id once", a.ID, prev)
		}
		seen[a.ID] = ru.String()
		if err := add(a); err != nil {
			return err
		}
	}
	return nil
}

// get fetches one listed record.
func (s *Syncer) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("unreachable: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %s", u, resp.Status)
	}
	return io.ReadAll(&limited{r: resp.Body, n: MaxRecord, what: u})
}

// readZip spools an archive to a temporary file and reads its *.json
// entries one at a time, giving each record to add: neither the archive
// nor its records are in memory at once.
func (s *Syncer) readZip(ctx context.Context, u string, body io.Reader, add func(*kiln.Advisory) error) error {
	tmp, err := os.CreateTemp(s.TempDir, "kiln-advisories-*.zip")
	if err != nil {
		return fmt.Errorf("spool %s: %w", u, err)
	}
	defer func() { tmp.Close(); os.Remove(tmp.Name()) }()
	size, err := io.Copy(tmp, body)
	if err != nil {
		return fmt.Errorf("download %s: %w", u, err)
	}
	zr, err := zip.NewReader(tmp, size)
	if err != nil {
		return kiln.FieldErrorf(kiln.EINVALID, u, "not a readable zip archive: %v", err)
	}
	seen := map[string]string{}
	buf := &bytes.Buffer{}
	for _, e := range zr.File {
		if e.FileInfo().IsDir() || !strings.HasSuffix(e.Name, ".json") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := u + "#" + e.Name
		if e.UncompressedSize64 > MaxRecord {
			return kiln.FieldErrorf(kiln.EINVALID, name, "entry is %d bytes; the limit for one record is %d", e.UncompressedSize64, MaxRecord)
		}
		rc, err := e.Open()
		if err != nil {
			return kiln.FieldErrorf(kiln.EINVALID, name, "cannot open the entry: %v", err)
		}
		buf.Reset()
		_, err = buf.ReadFrom(&limited{r: rc, n: MaxRecord, what: name})
		rc.Close()
		if err != nil {
			return kiln.FieldErrorf(kiln.EINVALID, name, "cannot read the entry: %v", err)
		}
		a, err := advisory.ParseOSV(name, buf.Bytes())
		if err != nil {
			return err
		}
		if prev, dup := seen[a.ID]; dup {
			return kiln.FieldErrorf(kiln.ECONFLICT, name, "advisory %s is also in %s; a source holds each id once", a.ID, prev)
		}
		seen[a.ID] = e.Name
		if err := add(a); err != nil {
			return err
		}
	}
	if len(seen) == 0 {
		return kiln.FieldErrorf(kiln.EINVALID, u, "the archive has no *.json records")
	}
	return nil
}

// limited reads at most n bytes and fails past them (io.LimitReader would
// end quietly and hand a truncated file to the parser).
type limited struct {
	r    io.Reader
	n    int64
	what string
	max  int64 // the limit, for the message (n when zero)
}

func (l *limited) Read(p []byte) (int, error) {
	if l.max == 0 {
		l.max = l.n
	}
	if l.n <= 0 {
		var one [1]byte
		if k, _ := l.r.Read(one[:]); k > 0 {
			return 0, fmt.Errorf("%s is larger than the %d-byte limit", l.what, l.max)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	k, err := l.r.Read(p)
	l.n -= int64(k)
	return k, err
}

// peekReader lets the first bytes be looked at before reading on.
type peekReader struct {
	r   io.Reader
	buf []byte
}

func (p *peekReader) peek(n int) ([]byte, error) {
	for len(p.buf) < n {
		tmp := make([]byte, n-len(p.buf))
		k, err := p.r.Read(tmp)
		p.buf = append(p.buf, tmp[:k]...)
		if err != nil {
			return p.buf, err
		}
	}
	return p.buf[:n], nil
}

func (p *peekReader) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		k := copy(b, p.buf)
		p.buf = p.buf[k:]
		return k, nil
	}
	return p.r.Read(b)
}
