package kiln

import (
	"strconv"
	"strings"
	"unicode"
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
	// version are required unless Artifact is given.
	Release map[string]string `json:"release"`
	// Artifact names the external artifact the server was made from, for
	// a server kiln did not build (a Packer AMI has no /etc/kiln-release):
	// the artifact id Packer printed ("us-east-1:ami-0abc…") or the
	// version's whole reference ("packer:amazon-ebs:us-east-1:ami-0abc…").
	// The store resolves it to the one version imported with that
	// artifact (ExternalNames); release image and version, when given,
	// win over it.
	Artifact string `json:"artifact,omitempty"`
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

// MaxArtifactName bounds Checkin.Artifact, as Packer's artifact ids are
// bounded on import.
const MaxArtifactName = 2048

// ByArtifact reports whether the check-in names its version by its
// artifact only, leaving the store to resolve it.
func (c *Checkin) ByArtifact() bool { return c.Artifact != "" && c.Release["image"] == "" }

// Validate checks a check-in before it is recorded.
func (c *Checkin) Validate() error {
	if err := ValidateInstanceID("instance_id", c.InstanceID); err != nil {
		return err
	}
	if c.Artifact != "" {
		if len(c.Artifact) > MaxArtifactName || strings.ContainsFunc(c.Artifact, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) {
			return FieldErrorf(EINVALID, "artifact", "artifact %.80q is not an artifact id: at most %d bytes without spaces or control characters, e.g. us-east-1:ami-0abc123", c.Artifact, MaxArtifactName)
		}
	}
	if c.ByArtifact() {
		if c.Release["version"] != "" {
			return FieldErrorf(EINVALID, "release.image", "release names a version but no image; give both, or only the artifact")
		}
	} else if _, err := c.Version(); err != nil {
		if c.Release["image"] == "" {
			return FieldErrorf(EINVALID, "release.image", "the check-in names no image (not a valid image name): give release image and version (from /etc/kiln-release) or, for a server kiln did not build, its artifact id (`kiln agent checkin --artifact us-east-1:ami-0abc…`)")
		}
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
