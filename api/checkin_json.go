package api

import (
	"encoding/json"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
)

// checkinBody is a check-in's answer, encoded by hand: the check-in route
// is the one every server of the fleet calls, and encoding/json's
// reflection over kiln.CheckinResult was most of the response's CPU. The
// bytes are the same as json.Marshal's (TestCheckinBodyJSON); the OpenAPI
// document still describes kiln.CheckinResult.
type checkinBody struct{ *kiln.CheckinResult }

// Schema is kiln.CheckinResult's.
func (checkinBody) Schema(r huma.Registry) *huma.Schema {
	return r.Schema(reflect.TypeFor[kiln.CheckinResult](), true, "")
}

// MarshalJSON encodes the result as json.Marshal would.
func (b checkinBody) MarshalJSON() ([]byte, error) {
	r := b.CheckinResult
	if r == nil {
		return []byte("null"), nil
	}
	if inst := r.Instance; inst != nil && (!jsonTime(inst.LaunchedAt) || !jsonTime(inst.LastSeenAt)) {
		return json.Marshal(r) // its error for years it cannot encode
	}
	out := make([]byte, 0, 512)
	out = append(out, `{"instance":`...)
	out = appendInstanceJSON(out, r.Instance)
	out = append(out, `,"created":`...)
	out = strconv.AppendBool(out, r.Created)
	out = append(out, `,"unknown":`...)
	out = strconv.AppendBool(out, r.Unknown)
	return append(out, '}'), nil
}

// jsonTime reports whether time.Time.MarshalJSON encodes t as RFC 3339
// (years 0–9999).
func jsonTime(t time.Time) bool { y := t.Year(); return y >= 0 && y <= 9999 }

// appendInstanceJSON appends inst as json.Marshal encodes a kiln.Instance
// (field order, omitempty and omitzero as its tags say).
func appendInstanceJSON(out []byte, inst *kiln.Instance) []byte {
	if inst == nil {
		return append(out, "null"...)
	}
	out = append(out, `{"id":`...)
	out = appendJSONString(out, inst.ID)
	out = append(out, `,"name":`...)
	out = appendJSONString(out, inst.Name)
	out = append(out, `,"version":{"image":`...)
	out = appendJSONString(out, inst.Version.Image)
	out = append(out, `,"number":`...)
	out = strconv.AppendInt(out, int64(inst.Version.Number), 10)
	out = append(out, `},"environment":`...)
	out = appendJSONString(out, inst.Environment)
	out = append(out, `,"platform":`...)
	out = appendJSONString(out, inst.Platform)
	out = append(out, `,"state":`...)
	out = appendJSONString(out, string(inst.State))
	if inst.Address != "" {
		out = append(out, `,"address":`...)
		out = appendJSONString(out, inst.Address)
	}
	if len(inst.Labels) > 0 {
		out = append(out, `,"labels":{`...)
		for i, k := range slices.Sorted(maps.Keys(inst.Labels)) {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendJSONString(out, k)
			out = append(out, ':')
			out = appendJSONString(out, inst.Labels[k])
		}
		out = append(out, '}')
	}
	out = append(out, `,"launched_at":"`...)
	out = append(inst.LaunchedAt.AppendFormat(out, time.RFC3339Nano), '"')
	if !inst.LastSeenAt.IsZero() {
		out = append(out, `,"last_seen_at":"`...)
		out = append(inst.LastSeenAt.AppendFormat(out, time.RFC3339Nano), '"')
	}
	if inst.Tainted {
		out = append(out, `,"tainted":true`...)
	}
	if inst.LaunchedByKiln {
		out = append(out, `,"launched_by_kiln":true`...)
	}
	if inst.ConfigDigest != "" {
		out = append(out, `,"config_digest":`...)
		out = appendJSONString(out, inst.ConfigDigest)
	}
	if inst.ConfigSource != "" {
		out = append(out, `,"config_source":`...)
		out = appendJSONString(out, inst.ConfigSource)
	}
	return append(out, '}')
}

// appendJSONString appends s quoted as encoding/json does (HTML
// characters, U+2028 and U+2029 escaped, invalid UTF-8 replaced).
func appendJSONString(out []byte, s string) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			out = append(out, s[start:i]...)
			switch b {
			case '"', '\\':
				out = append(out, '\\', b)
			case '\b':
				out = append(out, '\\', 'b')
			case '\f':
				out = append(out, '\\', 'f')
			case '\n':
				out = append(out, '\\', 'n')
			case '\r':
				out = append(out, '\\', 'r')
			case '\t':
				out = append(out, '\\', 't')
			default:
				out = append(out, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			out = append(out, s[start:i]...)
			out = append(out, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			out = append(out, s[start:i]...)
			out = append(out, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	out = append(out, s[start:]...)
	return append(out, '"')
}

// decodeCheckin decodes a check-in body into c. The body every agent
// sends — one object of the known fields spelled as documented, each at
// most once, strings without escapes — is read by hand
// (readCheckinFast), without encoding/json's reflection; anything else
// (an escape, a null, an unknown or differently cased field, a syntax
// error) goes through decodeStrict, so the value decoded and every error
// are what they always were (FuzzCheckinDecode compares the two).
func decodeCheckin(data []byte, c *kiln.Checkin) error {
	if readCheckinFast(data, c) {
		return nil
	}
	*c = kiln.Checkin{}
	return decodeStrict(data, c)
}

// Fields of kiln.Checkin, as bits of a set.
const (
	ckInstanceID = 1 << iota
	ckHostname
	ckEnvironment
	ckAddress
	ckLabels
	ckRelease
	ckArtifact
)

// readCheckinFast decodes data into c when it is in the common shape, and
// reports whether it was; c is then exactly what encoding/json would
// decode. On false, c holds partial fields.
func readCheckinFast(data []byte, c *kiln.Checkin) bool {
	r := jsonReader{b: data}
	if !r.consume('{') {
		return false
	}
	var seen int
	if !r.consume('}') {
		for {
			key, ok := r.rawString()
			if !ok || !r.consume(':') {
				return false
			}
			var bit int
			var dst *string
			var dstMap *map[string]string
			switch string(key) {
			case "instance_id":
				bit, dst = ckInstanceID, &c.InstanceID
			case "hostname":
				bit, dst = ckHostname, &c.Hostname
			case "environment":
				bit, dst = ckEnvironment, &c.Environment
			case "address":
				bit, dst = ckAddress, &c.Address
			case "labels":
				bit, dstMap = ckLabels, &c.Labels
			case "release":
				bit, dstMap = ckRelease, &c.Release
			case "artifact":
				bit, dst = ckArtifact, &c.Artifact
			default:
				return false // unknown, or a spelling only encoding/json matches
			}
			if seen&bit != 0 {
				return false // encoding/json merges a repeated object
			}
			seen |= bit
			if dst != nil {
				v, ok := r.rawString()
				if !ok {
					return false
				}
				*dst = string(v)
			} else if *dstMap, ok = r.stringMap(); !ok {
				return false
			}
			if r.consume(',') {
				continue
			}
			if !r.consume('}') {
				return false
			}
			break
		}
	}
	r.space()
	return r.i == len(r.b)
}

// jsonReader reads the subset of JSON readCheckinFast takes.
type jsonReader struct {
	b []byte
	i int
}

// space skips JSON whitespace.
func (r *jsonReader) space() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// consume skips whitespace and c, reporting whether c was there.
func (r *jsonReader) consume(c byte) bool {
	r.space()
	if r.i < len(r.b) && r.b[r.i] == c {
		r.i++
		return true
	}
	return false
}

// rawString reads a string without escapes or control characters whose
// bytes are valid UTF-8 — what encoding/json decodes to the same bytes.
// The result aliases the input.
func (r *jsonReader) rawString() ([]byte, bool) {
	if !r.consume('"') {
		return nil, false
	}
	start, ascii := r.i, true
	for j := start; j < len(r.b); j++ {
		switch c := r.b[j]; {
		case c == '"':
			s := r.b[start:j]
			if !ascii && !utf8.Valid(s) {
				return nil, false // encoding/json replaces invalid bytes
			}
			r.i = j + 1
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// stringMap reads an object of string values (empty: an empty map, as
// encoding/json decodes it).
func (r *jsonReader) stringMap() (map[string]string, bool) {
	if !r.consume('{') {
		return nil, false
	}
	m := make(map[string]string, 4)
	if r.consume('}') {
		return m, true
	}
	for {
		k, ok := r.rawString()
		if !ok || !r.consume(':') {
			return nil, false
		}
		v, ok := r.rawString()
		if !ok {
			return nil, false
		}
		m[releaseKey(k)] = string(v) // a repeated key: the last wins, as in encoding/json
		if r.consume(',') {
			continue
		}
		return m, r.consume('}')
	}
}

// releaseKey returns k as a string, without allocating for the keys
// every release file has.
func releaseKey(k []byte) string {
	switch string(k) {
	case "image":
		return "image"
	case "version":
		return "version"
	case "name":
		return "name"
	}
	return string(k)
}

// jsonFormats returns formats with the JSON ones writing a check-in's
// answer as checkinBody encodes it: huma's JSON format (an encoding/json
// Encoder without HTML escaping) would check and copy the bytes again
// (compact), and end them with a newline, as this does.
func jsonFormats(formats map[string]huma.Format) map[string]huma.Format {
	out := make(map[string]huma.Format, len(formats))
	for ct, f := range formats {
		if marshal := f.Marshal; ct == "application/json" || ct == "json" {
			f.Marshal = func(w io.Writer, v any) error {
				b, ok := v.(checkinBody)
				if !ok {
					return marshal(w, v)
				}
				out, err := b.MarshalJSON()
				if err != nil {
					return marshal(w, v) // its error, as before
				}
				_, err = w.Write(append(out, '\n'))
				return err
			}
		}
		out[ct] = f
	}
	return out
}
