package kiln

import (
	"strings"
)

// Role is what a token may do. Viewer, builder, operator and admin form a
// ladder (each may do what the ones below may); agent stands apart: it may
// only send instance check-ins, and no other role but admin may.
type Role string

// Roles; docs/security.md has the matrix of who may do what.
const (
	RoleViewer   Role = "viewer"   // reads everything
	RoleAgent    Role = "agent"    // sends instance check-ins, nothing else
	RoleBuilder  Role = "builder"  // records versions, uploads artifacts, runs builds and tests
	RoleOperator Role = "operator" // promotes, rolls out, revokes, deprecates, opens break-glass access
	RoleAdmin    Role = "admin"    // manages tokens and policies; may do everything
)

// Roles lists every role, least powerful first.
var Roles = []Role{RoleViewer, RoleAgent, RoleBuilder, RoleOperator, RoleAdmin}

// rank orders the ladder; agent is off it (0).
func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleBuilder:
		return 2
	case RoleOperator:
		return 3
	case RoleAdmin:
		return 4
	}
	return 0
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return r == RoleAgent || r.rank() > 0 }

// Allows reports whether a token with role r may call an operation that
// needs role need. Admin may do everything; agent only agent operations;
// otherwise r must be at least need on the ladder.
func (r Role) Allows(need Role) bool {
	switch {
	case r == RoleAdmin:
		return need.Valid()
	case need == RoleAgent || r == RoleAgent:
		return r == need
	}
	return r.rank() > 0 && need.rank() > 0 && r.rank() >= need.rank()
}

// ParseRole parses a role name, naming field in the error.
func ParseRole(field, s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", FieldErrorf(EINVALID, field, "unknown role %q; use one of viewer, agent, builder, operator, admin", s)
	}
	return r, nil
}
