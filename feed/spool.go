package feed

import (
	"bufio"
	"encoding/json"
	"fmt"
	"iter"
	"os"
	"slices"

	"github.com/kiln-project/kiln"
)

// spool keeps a source's parsed advisories in a temporary file between the
// read (outside any transaction, where every parse error is found) and the
// import (one transaction that reads them back a chunk at a time). In
// memory it holds only where each id's records are, so a sync's heap does
// not grow with the advisories' size.
type spool struct {
	f    *os.File
	w    *bufio.Writer
	size int64
	at   map[string][]span
	// merge joins the records of one id in the order they came (the
	// tracker lists a CVE once per source package); nil when an id comes
	// once.
	merge func(a, b *kiln.Advisory)
}

// span is where one record is in the spool file.
type span struct {
	off int64
	n   int
}

func newSpool(dir string, merge func(a, b *kiln.Advisory)) (*spool, error) {
	f, err := os.CreateTemp(dir, "kiln-advisories-*.jsonl")
	if err != nil {
		return nil, fmt.Errorf("spool the advisories: %w", err)
	}
	return &spool{f: f, w: bufio.NewWriterSize(f, 256<<10), at: map[string][]span{}, merge: merge}, nil
}

// add writes one advisory (or, with merge, one part of it).
func (s *spool) add(a *kiln.Advisory) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("spool advisory %s: %w", a.ID, err)
	}
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("spool advisory %s: %w", a.ID, err)
	}
	s.at[a.ID] = append(s.at[a.ID], span{s.size, len(b)})
	s.size += int64(len(b))
	return nil
}

// all yields the advisories by id, each id's records merged. It is read
// once, by the store's import.
func (s *spool) all() iter.Seq2[*kiln.Advisory, error] {
	return func(yield func(*kiln.Advisory, error) bool) {
		if err := s.w.Flush(); err != nil {
			yield(nil, fmt.Errorf("spool the advisories: %w", err))
			return
		}
		ids := make([]string, 0, len(s.at))
		for id := range s.at {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		var buf []byte
		for _, id := range ids {
			var a *kiln.Advisory
			for _, sp := range s.at[id] {
				buf = slices.Grow(buf[:0], sp.n)[:sp.n]
				if _, err := s.f.ReadAt(buf, sp.off); err != nil {
					yield(nil, fmt.Errorf("read back advisory %s: %w", id, err))
					return
				}
				next := &kiln.Advisory{}
				if err := json.Unmarshal(buf, next); err != nil {
					yield(nil, fmt.Errorf("read back advisory %s: %w", id, err))
					return
				}
				if a == nil {
					a = next
				} else if s.merge != nil {
					s.merge(a, next)
				}
			}
			if !yield(a, nil) {
				return
			}
		}
	}
}

// close removes the spool file.
func (s *spool) close() {
	s.f.Close()
	os.Remove(s.f.Name())
}
