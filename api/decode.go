package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
)

// rawJSON is the input of an operation that decodes its body itself, once
// and strictly (decodeStrict), instead of huma's validate-then-unmarshal,
// which parses every body twice. Only the hottest route (check-ins) does.
type rawJSON struct {
	RawBody []byte
}

// jsonBody documents T as an operation's required JSON request body, as
// huma would for a Body field (objects reject unknown properties).
func jsonBody[T any](s *Server) *huma.RequestBody {
	var zero T
	schema := s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeOf(zero), true, "")
	return &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{"application/json": {Schema: schema}}}
}

// decodeStrict decodes one JSON value into v the way huma's validation
// would refuse it: unknown fields, wrong types, trailing data and an empty
// body are EINVALID errors naming the field under "body.".
func decodeStrict(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return kiln.FieldErrorf(kiln.EINVALID, "body", "request body is required; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return kiln.FieldErrorf(kiln.EINVALID, "body", "request body has data after its JSON value; send one JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return kiln.FieldErrorf(kiln.EINVALID, "body", "request body is not valid JSON (at byte %d): %v", syn.Offset, syn)
	case errors.As(err, &typ):
		field := "body"
		if typ.Field != "" {
			field += "." + typ.Field
		}
		return kiln.FieldErrorf(kiln.EINVALID, field, "expected %s, got JSON %s", jsonKind(typ.Type), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return kiln.FieldErrorf(kiln.EINVALID, "body", "request body is not valid JSON: it ends too early")
	}
	// encoding/json reports an unknown field only as text.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return kiln.FieldErrorf(kiln.EINVALID, "body."+name, "unexpected property %q; see the operation's schema in /openapi.json", name)
	}
	return kiln.FieldErrorf(kiln.EINVALID, "body", "request body: %v", err)
}

// jsonKind names a Go type as a JSON type for error messages.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}
