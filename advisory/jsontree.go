package advisory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/kiln-project/kiln"
)

// node is one JSON value with the offset where it starts, so that a decoder
// can say exactly where a wrong value is (file:line:col and a path like
// affected[0].ranges[1].events[0].fixed).
type node struct {
	kind byte // '{' object, '[' array, 's' string, 'n' number, 'b' bool, '0' null
	off  int64
	str  string // string value, or a number's text
	b    bool
	keys []string // object keys, in input order
	vals []*node  // object values (parallel to keys) or array elements
}

// get returns an object's member, or nil.
func (n *node) get(key string) *node {
	for i, k := range n.keys {
		if k == key {
			return n.vals[i]
		}
	}
	return nil
}

func (n *node) kindName() string {
	switch n.kind {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 's':
		return "a string"
	case 'n':
		return "a number"
	case 'b':
		return "a boolean"
	}
	return "null"
}

// jsonDoc is one parsed input file.
type jsonDoc struct {
	name string
	data []byte
	root *node
	// base is the offset in the file where the decoder's input starts,
	// when it reads only a part of the file.
	base int64
	// origin is the file offset of data[0], when data holds only a part of
	// the file (a streaming reader keeps one value at a time); lines then
	// turns file offsets into lines and columns.
	origin int64
	lines  *lineReader
}

// end is the file offset just past the last byte read.
func (d *jsonDoc) end() int64 {
	if d.lines != nil {
		return d.lines.n
	}
	return d.origin + int64(len(d.data))
}

// parseJSON reads data into a node tree. Duplicate object keys and trailing
// data are errors: both hide what the author meant.
func parseJSON(name string, data []byte) (*jsonDoc, error) {
	d := &jsonDoc{name: name, data: data}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	root, err := d.value(dec, "")
	if err != nil {
		return nil, err
	}
	off := d.start(dec.InputOffset())
	if _, err := dec.Token(); err != io.EOF {
		return nil, d.errAt(off, "", "unexpected data after the JSON value; a file holds one JSON document")
	}
	d.root = root
	return d, nil
}

// start skips the whitespace and separators after off, to the first byte of
// the next token.
func (d *jsonDoc) start(off int64) int64 {
	for off >= d.origin && off-d.origin < int64(len(d.data)) {
		switch d.data[off-d.origin] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
			continue
		}
		break
	}
	return off
}

func (d *jsonDoc) value(dec *json.Decoder, path string) (*node, error) {
	off := d.start(d.base + dec.InputOffset())
	tok, err := dec.Token()
	if err != nil {
		return nil, d.syntaxErr(err, off, path)
	}
	n := &node{off: off}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n.kind = '{'
			seen := map[string]bool{}
			for dec.More() {
				koff := d.start(d.base + dec.InputOffset())
				kt, err := dec.Token()
				if err != nil {
					return nil, d.syntaxErr(err, koff, path)
				}
				key, _ := kt.(string)
				kpath := joinKey(path, key)
				if seen[key] {
					return nil, d.errAt(koff, kpath, "key %q appears twice in the same object; keep one", key)
				}
				seen[key] = true
				v, err := d.value(dec, kpath)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, key)
				n.vals = append(n.vals, v)
			}
		case '[':
			n.kind = '['
			for i := 0; dec.More(); i++ {
				v, err := d.value(dec, fmt.Sprintf("%s[%d]", path, i))
				if err != nil {
					return nil, err
				}
				n.vals = append(n.vals, v)
			}
		default:
			return nil, d.errAt(off, path, "unexpected %q", t)
		}
		eoff := d.start(d.base + dec.InputOffset())
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, d.syntaxErr(err, eoff, path)
		}
	case string:
		n.kind, n.str = 's', t
	case json.Number:
		n.kind, n.str = 'n', t.String()
	case float64: // a decoder without UseNumber
		n.kind, n.str = 'n', fmt.Sprint(t)
	case bool:
		n.kind, n.b = 'b', t
	case nil:
		n.kind = '0'
	}
	return n, nil
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *jsonDoc) syntaxErr(err error, off int64, path string) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// Decoder.Token reports the offset of the bad byte itself.
		off = d.base + se.Offset
		return d.errAt(off, path, "JSON syntax error: %v; fix the file or download it again", se)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return d.errAt(d.end(), path, "the file ends in the middle of a JSON value; it is truncated")
	}
	return d.errAt(off, path, "%v", err)
}

// errAt returns an EINVALID error whose field is "name:line:col: path".
func (d *jsonDoc) errAt(off int64, path, format string, args ...any) error {
	var line, col int
	if d.lines != nil {
		line, col = d.lines.pos(off)
	} else {
		line, col = lineCol(d.data, off)
	}
	field := fmt.Sprintf("%s:%d:%d", d.name, line, col)
	if path != "" {
		field += ": " + path
	}
	return kiln.FieldErrorf(kiln.EINVALID, field, format, args...)
}

func (d *jsonDoc) errNode(n *node, path, format string, args ...any) error {
	return d.errAt(n.off, path, format, args...)
}

// lineCol turns a byte offset into a 1-based line and column (in bytes).
func lineCol(data []byte, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line := bytes.Count(before, []byte{'\n'}) + 1
	col := int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// Typed accessors. Each returns an error naming path when the value has the
// wrong type; a missing optional member is not an error.

func (d *jsonDoc) object(n *node, path string) error {
	if n.kind != '{' {
		return d.errNode(n, path, "is %s; want an object", n.kindName())
	}
	return nil
}

func (d *jsonDoc) optString(obj *node, key, path string) (string, error) {
	v := obj.get(key)
	if v == nil || v.kind == '0' {
		return "", nil
	}
	if v.kind != 's' {
		return "", d.errNode(v, joinKey(path, key), "is %s; want a string", v.kindName())
	}
	return v.str, nil
}

func (d *jsonDoc) reqString(obj *node, key, path string) (string, error) {
	v := obj.get(key)
	if v == nil {
		return "", d.errNode(obj, joinKey(path, key), "is missing; it is required")
	}
	s, err := d.optString(obj, key, path)
	if err == nil && s == "" {
		return "", d.errNode(v, joinKey(path, key), "is empty or null; it is required")
	}
	return s, err
}

// optArray returns an array member's elements; want names what the elements
// are, for the message.
func (d *jsonDoc) optArray(obj *node, key, path, want string) ([]*node, error) {
	v := obj.get(key)
	if v == nil || v.kind == '0' {
		return nil, nil
	}
	if v.kind != '[' {
		return nil, d.errNode(v, joinKey(path, key), "is %s; want an array of %s", v.kindName(), want)
	}
	return v.vals, nil
}

func (d *jsonDoc) optStrings(obj *node, key, path string) ([]string, error) {
	elems, err := d.optArray(obj, key, path, "strings")
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(elems))
	for i, e := range elems {
		if e.kind != 's' {
			return nil, d.errNode(e, joinKey(path, key)+"["+strconv.Itoa(i)+"]", "is %s; want a string", e.kindName())
		}
		out = append(out, e.str)
	}
	return out, nil
}
