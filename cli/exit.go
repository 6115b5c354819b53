package cli

import (
	"errors"

	kiln "github.com/kiln-project/kiln"
)

// Exit codes, documented in README: 0 ok, 1 user error, 2 internal error.
const (
	ExitOK       = 0
	ExitUser     = 1
	ExitInternal = 2
)

// ExitCode maps an error to the process exit code, in this one place.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return ExitUser
	}
	switch kiln.ErrorCode(err) {
	case kiln.EINVALID, kiln.ENOTFOUND, kiln.ECONFLICT, kiln.EIMMUTABLE,
		kiln.EUNAUTH, kiln.EFORBIDDEN, kiln.EUNAVAILABLE:
		return ExitUser
	}
	return ExitInternal
}

// usageError is a mistake in the command line itself (unknown flag, missing
// argument), reported by cobra.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }
