package api

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
)

// httpStatus maps kiln error codes to HTTP statuses, in this one place.
var httpStatus = map[string]int{
	kiln.EINVALID:     http.StatusBadRequest,
	kiln.ENOTFOUND:    http.StatusNotFound,
	kiln.ECONFLICT:    http.StatusConflict,
	kiln.EIMMUTABLE:   http.StatusConflict,
	kiln.EUNAUTH:      http.StatusUnauthorized,
	kiln.EFORBIDDEN:   http.StatusForbidden,
	kiln.EUNAVAILABLE: http.StatusServiceUnavailable,
	kiln.EINTERNAL:    http.StatusInternalServerError,
}

// HTTPStatus is the HTTP status of an error with kiln error code code
// (500 for a code the table does not know): the API's error bodies and the
// dashboard's error pages answer with it.
func HTTPStatus(code string) int {
	if status, ok := httpStatus[code]; ok {
		return status
	}
	return http.StatusInternalServerError
}

// codeFor is the reverse, for errors huma raises itself (validation, size).
func codeFor(status int) string {
	switch status {
	case http.StatusUnprocessableEntity, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return kiln.EINVALID
	case http.StatusNotFound:
		return kiln.ENOTFOUND
	case http.StatusConflict:
		return kiln.ECONFLICT
	case http.StatusUnauthorized:
		return kiln.EUNAUTH
	case http.StatusForbidden:
		return kiln.EFORBIDDEN
	case http.StatusServiceUnavailable:
		return kiln.EUNAVAILABLE
	}
	return kiln.EINTERNAL
}

// ErrorBody is the shape of every error response: the kiln error code, the
// field at fault (as in the request: "body.semver", "query.status"), and a
// message that says what to do. Details lists every problem when there are
// several (e.g. schema validation).
type ErrorBody struct {
	HTTPStatus int            `json:"status"`
	Code       string         `json:"code"`
	Field      string         `json:"field,omitempty"`
	Message    string         `json:"message"`
	Details    []*ErrorDetail `json:"details,omitempty"`
}

// ErrorDetail is one problem in a request.
type ErrorDetail struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (e *ErrorBody) Error() string  { return e.Message }
func (e *ErrorBody) GetStatus() int { return e.HTTPStatus }

var installOnce sync.Once

// installErrorModel makes huma produce ErrorBody for its own errors
// (validation, body too large, unknown fields). huma only offers this as a
// package variable.
func installErrorModel() {
	installOnce.Do(func() {
		huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
			body := &ErrorBody{HTTPStatus: status, Code: codeFor(status), Message: msg}
			for _, e := range errs {
				if e == nil {
					continue
				}
				d := &ErrorDetail{Message: e.Error()}
				var ed huma.ErrorDetailer
				if errors.As(e, &ed) {
					det := ed.ErrorDetail()
					d.Message, d.Field = det.Message, det.Location
				}
				body.Details = append(body.Details, d)
			}
			if status == http.StatusUnprocessableEntity {
				// Validation failures are the client's input: say 400 like
				// every other kiln input error, naming the first field.
				body.HTTPStatus = http.StatusBadRequest
			}
			if len(body.Details) > 0 {
				body.Field = body.Details[0].Field
				parts := make([]string, len(body.Details))
				for i, d := range body.Details {
					parts[i] = strings.TrimSpace(d.Field + ": " + d.Message)
				}
				body.Message = msg + ": " + strings.Join(parts, "; ")
			}
			if status == http.StatusRequestEntityTooLarge {
				body.Message = "request body is larger than 1 MiB; send less data per request"
			}
			return body
		}
	})
}

// toHTTP turns a domain error into the API error body, logging internal ones
// (their text may hold details the client must not see).
func (s *Server) toHTTP(err error) error {
	code := kiln.ErrorCode(err)
	body := &ErrorBody{HTTPStatus: HTTPStatus(code), Code: code, Message: kiln.ErrorMessage(err)}
	var ke *kiln.Error
	if errors.As(err, &ke) {
		body.Message = ke.Message
		body.Field = ke.Field
	}
	if code == kiln.EINTERNAL {
		s.cfg.Logger.Error("api: internal error", slog.Any("err", err))
		body.Message = "internal error; the server log has the details"
	}
	return body
}
