package kiln

import (
	"strconv"
)

// Checkin is what a server's agent reports about itself: its id, what its
// /etc/kiln-release says, where it runs.
type Checkin struct {
	InstanceID  string            `json:"instance_id"`
	Hostname    string            `json:"hostname,omitempty"`
	Environment string            `json:"environment,omitempty"`
	Address     string            `json:"address,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	// Release holds the key=value lines of /etc/kiln-release; image and
	// version are required.
	Release map[string]string `json:"release"`
	// Agent is the agent token that sent it ("token:NAME"; set by the
	// API, never sent). An instance is bound to the first agent token
	// that checks it in; others are refused. Empty for check-ins that
	// come with no agent token (an admin's), which bind nothing.
	Agent string `json:"-"`
}

// Version returns the image version the release file names.
func (c *Checkin) Version() (VersionRef, error) {
	img := c.Release["image"]
	if err := ValidateImageName(img); err != nil {
		return VersionRef{}, FieldErrorf(EINVALID, "release.image", "release file names image %q, which is not a valid image name; is /etc/kiln-release from a kiln build?", img)
	}
	n, err := strconv.Atoi(c.Release["version"])
	if err != nil || n < 1 {
		return VersionRef{}, FieldErrorf(EINVALID, "release.version", "release file says version %q; want a version number ≥ 1", c.Release["version"])
	}
	return VersionRef{Image: img, Number: n}, nil
}

// Validate checks a check-in before it is recorded.
func (c *Checkin) Validate() error {
	if err := ValidateInstanceID("instance_id", c.InstanceID); err != nil {
		return err
	}
	if _, err := c.Version(); err != nil {
		return err
	}
	for _, f := range [][2]string{{"hostname", c.Hostname}, {"environment", c.Environment}, {"address", c.Address}} {
		if f[1] == "" {
			continue
		}
		if err := validateName(f[0], f[1]); err != nil {
			return err
		}
	}
	return validateLabels("labels", c.Labels)
}

// CheckinResult says what a check-in did.
type CheckinResult struct {
	Instance *Instance `json:"instance"`
	// Created is set when the instance was not known before.
	Created bool `json:"created"`
	// Unknown is set when the registry does not know the version it runs.
	Unknown bool `json:"unknown"`
	// Refused is set, alone, when this check-in was refused and nothing
	// of it recorded: the instance is bound to another agent token, or
	// kiln launched it. The other check-ins of a batch are not affected.
	Refused error `json:"-"`
}
