package advisory

import (
	"bytes"
	"io"
	"sort"
)

// lineReader passes a stream through and keeps the bytes and newline
// offsets of the part not yet forgotten (the value being read), so that an
// error found while streaming can be explained with file:line:col and a
// JSON path. Its memory stays bounded by the largest value, not the file.
type lineReader struct {
	r io.Reader
	n int64 // bytes read so far
	// dropped counts the forgotten newlines; lastDropped is the offset of
	// the last of them (-1: none).
	dropped     int
	lastDropped int64
	nl          []int64 // offsets of the newlines not forgotten, ascending
	// buf holds the bytes read from file offset start on: the value being
	// read, for the token reader that explains a bad one.
	buf   []byte
	start int64
}

func newLineReader(r io.Reader) *lineReader { return &lineReader{r: r, lastDropped: -1} }

func (l *lineReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.buf = append(l.buf, p[:n]...)
	for i := 0; i < n; {
		j := bytes.IndexByte(p[i:n], '\n')
		if j < 0 {
			break
		}
		l.nl = append(l.nl, l.n+int64(i+j))
		i += j + 1
	}
	l.n += int64(n)
	return n, err
}

// forget drops the bytes and newlines before off: no error will point
// there.
func (l *lineReader) forget(off int64) {
	if k := off - l.start; k > 0 && k <= int64(len(l.buf)) {
		l.buf = append(l.buf[:0], l.buf[k:]...)
		l.start = off
	}
	i := sort.Search(len(l.nl), func(i int) bool { return l.nl[i] >= off })
	if i == 0 {
		return
	}
	l.dropped += i
	l.lastDropped = l.nl[i-1]
	l.nl = append(l.nl[:0], l.nl[i:]...)
}

// pos turns a file offset (not before the last forget) into a 1-based line
// and column (in bytes).
func (l *lineReader) pos(off int64) (line, col int) {
	i := sort.Search(len(l.nl), func(i int) bool { return l.nl[i] >= off })
	last := l.lastDropped
	if i > 0 {
		last = l.nl[i-1]
	}
	return l.dropped + i + 1, int(off - last)
}
