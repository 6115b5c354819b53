package kiln

import (
	"strings"
)

// Health check kinds.
const (
	HealthHTTP = "http" // GET the path on the instance's port; 2xx and 3xx are healthy
	HealthTCP  = "tcp"  // the instance's port accepts a connection
)

// HealthCheck says how an instance of a service is found healthy.
type HealthCheck struct {
	Kind string `json:"kind"`
	Path string `json:"path,omitempty"`
}

func (h HealthCheck) String() string {
	if h.Kind == HealthHTTP {
		return "http:" + h.Path
	}
	return h.Kind
}

// Validate checks a health check.
func (h HealthCheck) Validate(field string) error {
	switch {
	case h.Kind == HealthTCP && h.Path == "":
		return nil
	case h.Kind == HealthHTTP && strings.HasPrefix(h.Path, "/") && !strings.ContainsAny(h.Path, " \t\r\n"):
		return nil
	}
	return FieldErrorf(EINVALID, field, "health check %q is not valid; write http:/PATH (e.g. http:/healthz) or tcp", h.String())
}

// ParseHealthCheck parses "http:/healthz" or "tcp".
func ParseHealthCheck(field, s string) (HealthCheck, error) {
	kind, path, _ := strings.Cut(s, ":")
	h := HealthCheck{Kind: kind, Path: path}
	return h, h.Validate(field)
}
