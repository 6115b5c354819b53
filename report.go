package kiln

import (
	"time"
)

// ReportRow is one image version in use.
type ReportRow struct {
	Image   string    `json:"image"`
	Number  int       `json:"number"`
	Name    string    `json:"name"`
	BuiltAt time.Time `json:"built_at,omitzero"`
	Status  Status    `json:"status,omitempty"`
	// Unknown is set when the registry has no such version.
	Unknown   bool `json:"unknown,omitempty"`
	Instances int  `json:"instances"`
	Lost      int  `json:"lost,omitempty"`
	// OverAge counts the instances that break their environment's age
	// policy.
	OverAge int `json:"over_age,omitempty"`
}

// Report is the fleet report: which versions are in use and by how many.
type Report struct {
	Environment string       `json:"environment,omitempty"`
	Rows        []*ReportRow `json:"rows"`
	Versions    int          `json:"versions"`
	Instances   int          `json:"instances"`
	Unknown     int          `json:"unknown_instances"`
	OverAge     int          `json:"over_age_instances"`
	Policies    []*AgePolicy `json:"policies,omitempty"`
}

// ExposureRow is one exposed image version.
type ExposureRow struct {
	ReportRow
	// FixedIn is the first version of the image without the problem;
	// empty when no version has the fix yet.
	FixedIn string `json:"fixed_in,omitempty"`
	// Findings say which installed packages are affected and why
	// (package-level advisories only).
	Findings []string `json:"findings,omitempty"`
}

// Exposure lists the instances that must be rebuilt for an advisory or a
// fixed-in statement.
type Exposure struct {
	Advisory    string         `json:"advisory,omitempty"`
	Environment string         `json:"environment,omitempty"`
	FixedIn     []VersionRef   `json:"fixed_in"`
	Rows        []*ExposureRow `json:"rows"`
	Versions    int            `json:"versions"`
	Instances   int            `json:"instances"`
	// Notes say what could not be decided (a version whose Debian release
	// is unknown, an image with no fix yet).
	Notes []string `json:"notes,omitempty"`
}

// OverageRow is one image version in one environment built too long ago.
type OverageRow struct {
	ReportRow
	Environment string `json:"environment"`
	MaxAge      Age    `json:"max_age_seconds"`
	// Over is how far past the limit the version is.
	Over Age `json:"over_seconds"`
}

// Overage lists instances that break an age limit.
type Overage struct {
	Environment string        `json:"environment,omitempty"`
	MaxAge      Age           `json:"max_age_seconds,omitempty"`
	Rows        []*OverageRow `json:"rows"`
	Versions    int           `json:"versions"`
	Instances   int           `json:"instances"`
}

// StaleRow is one image version in use that is older than its image's
// latest ready version.
type StaleRow struct {
	ReportRow
	// Latest is the version the instances should run: the latest ready
	// version, or their environment's channel version (see Against).
	Latest string `json:"latest_ready"`
	// Against says which: "latest ready" or "channel ENV".
	Against string `json:"against"`
	Behind  int    `json:"behind"`
}

// Stale lists instances not on the latest ready version of their image.
type Stale struct {
	Environment string      `json:"environment,omitempty"`
	Rows        []*StaleRow `json:"rows"`
	Versions    int         `json:"versions"`
	Instances   int         `json:"instances"`
}
