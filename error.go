package kiln

import (
	"errors"
	"fmt"
)

// Error codes a caller may branch on. The CLI maps them to exit codes and the
// API to HTTP statuses, each in one table (cli/exit.go, api/error.go).
const (
	EINVALID     = "invalid"      // the input is wrong; the message says which field and how to fix it
	ENOTFOUND    = "not_found"    // the image, version or other named thing does not exist
	ECONFLICT    = "conflict"     // the thing exists already, or its state forbids the change
	EIMMUTABLE   = "immutable"    // provenance or another write-once record cannot be changed
	EUNAUTH      = "unauthorized" // no or bad credentials
	EFORBIDDEN   = "forbidden"    // credentials are fine but the role is not enough
	EUNAVAILABLE = "unavailable"  // a dependency (database, mirror) cannot be reached or is locked
	EINTERNAL    = "internal"     // a bug or an unexpected failure
)

// Error is an error meant for the user: Code says what kind of failure it is,
// Field names the input at fault (a flag, JSON field or file:line), Message
// says what was wrong and what to do.
type Error struct {
	Code    string
	Field   string
	Message string
	Err     error // optional underlying cause, kept for errors.Is/As
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if e.Err != nil && e.Code == EINTERNAL {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an *Error about one input field.
func FieldErrorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorField returns the field of the first *Error in err's chain.
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// ErrorMessage returns the user-facing message of err. Errors that are not
// *Error are internal: their text is returned as is, since it may be the only
// clue, but callers serving remote users should prefer a generic message.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Error()
	}
	return err.Error()
}
