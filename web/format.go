package web

import (
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	kiln "github.com/kiln-project/kiln"
)

// timeLayout is how the dashboard writes times: UTC, to the minute.
const timeLayout = "2006-01-02 15:04 UTC"

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// funcs are the helpers templates may call.
func (s *Server) funcs() template.FuncMap {
	return template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format(timeLayout)
		},
		"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		// ago is how long before now t was ("92d4h").
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return kiln.FormatAge(s.cfg.Clock().Sub(t))
		},
		"took": func(from, to time.Time) string {
			if from.IsZero() || to.IsZero() {
				return ""
			}
			d := to.Sub(from)
			if d < time.Minute {
				return d.Round(time.Second).String()
			}
			return kiln.FormatAge(d)
		},
		"drill":      drillURL,
		"imageURL":   func(image string) string { return Prefix + "images/" + url.PathEscape(image) },
		"versionURL": versionURL,
		"refURL":     func(r kiln.VersionRef) string { return versionURL(r.Image, r.Number) },
		"runURL":     func(id int64) string { return Prefix + "runs/" + strconv.FormatInt(id, 10) },
		"exposureURL": func(id, env string) string {
			return Prefix + "exposure?" + values("advisory", id, "env", env)
		},
		"endsNL":   func(s string) bool { return strings.HasSuffix(s, "\n") },
		"fleetURL": func(env string) string { return Prefix + "fleet?" + values("env", env) },
		// For the charts' tables.
		"count":      formatCount,
		"days":       days,
		"envName":    envName,
		"serviceURL": func(name string) string { return Prefix + "services/" + url.PathEscape(name) },
		"rolloutURL": func(service string, id int64) string {
			return Prefix + "services/" + url.PathEscape(service) + "?rollout=" + strconv.FormatInt(id, 10)
		},
		"stageTook": func(r stageRun, stage string) string {
			d, ok := r.Took[stage]
			if !ok {
				return ""
			}
			return tookString(d)
		},
		"rate":        func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
		"orNoneRef":   orNone,
		"shortDigest": shortDigest,
	}
}

// drillURL lists the instances behind a report row (number 0: every
// version of the image).
func drillURL(image string, number int, env string) string {
	n := ""
	if number > 0 {
		n = strconv.Itoa(number)
	}
	return Prefix + "fleet/instances?" + values("image", image, "version", n, "env", env)
}

func versionURL(image string, number int) string {
	return Prefix + "images/" + url.PathEscape(image) + "/versions/" + strconv.Itoa(number)
}

// values encodes key/value pairs, leaving out empty values.
func values(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	return v.Encode()
}

// pager links the pages of a long list.
type pager struct {
	Offset, Limit, Total int
	Prev, Next           string
}

// newPager builds the previous and next links of a list at offset of
// total, keeping the other query parameters of u.
func newPager(u *url.URL, offset, limit, total int) pager {
	p := pager{Offset: offset, Limit: limit, Total: total}
	link := func(off int) string {
		q := u.Query()
		if off > 0 {
			q.Set("offset", strconv.Itoa(off))
		} else {
			q.Del("offset")
		}
		return u.Path + "?" + q.Encode()
	}
	if offset > 0 {
		p.Prev = link(max(0, offset-limit))
	}
	if offset+limit < total {
		p.Next = link(offset + limit)
	}
	return p
}

// From is the 1-based index of the first item shown.
func (p pager) From() int {
	if p.Total == 0 {
		return 0
	}
	return p.Offset + 1
}

// To is the 1-based index of the last item shown.
func (p pager) To() int { return min(p.Offset+p.Limit, p.Total) }

// pageRows cuts a freshly computed report table down to the rows the
// request's offset asks for, at most cfg.RowsPerPage, and returns the
// pager under the table. The report's totals are left as they were.
func pageRows[T any](s *Server, r *http.Request, rows *[]T) (pager, error) {
	offset, err := intParam(r.URL.Query(), "offset")
	if err != nil {
		return pager{}, err
	}
	all, n := *rows, s.cfg.RowsPerPage
	if offset >= len(all) { // past the end (the table shrank): the last page
		offset = max(0, (len(all)-1)/n*n)
	}
	*rows = all[offset:min(offset+n, len(all))]
	return newPager(r.URL, offset, n, len(all)), nil
}

// intParam reads a non-negative integer query parameter; absent is 0.
func intParam(q url.Values, name string) (int, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, kiln.FieldErrorf(kiln.EINVALID, name, "%q is not a whole number ≥ 0", s)
	}
	return n, nil
}

// shortDigest is a "sha256:…" digest's algorithm and first 12 hex digits
// (the page shows the whole one on hover); "—" for none.
func shortDigest(d string) string {
	const n = len("sha256:") + 12
	switch {
	case d == "":
		return "—"
	case len(d) > n:
		return d[:n]
	}
	return d
}
