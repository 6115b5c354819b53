package kiln

import (
	"time"
)

// Usage is how many instances run one image version in one environment:
// the aggregate every fleet report is computed from. The store counts in
// SQL; reports never load instances one by one.
type Usage struct {
	Image       string `json:"image"`
	Number      int    `json:"number"`
	Environment string `json:"environment"`
	// Known is false when the registry has no such version (an instance
	// registered with allow-unknown, or checked in from an image built
	// elsewhere); Status and BuiltAt are then empty.
	Known   bool      `json:"known"`
	Status  Status    `json:"status,omitempty"`
	BuiltAt time.Time `json:"built_at,omitzero"`
	// LatestReady is the number of the image's newest ready version, 0 when
	// it has none.
	LatestReady int `json:"latest_ready,omitempty"`
	// Instances counts instances in any state but destroyed, Lost included.
	Instances int `json:"instances"`
	Lost      int `json:"lost,omitempty"`
}

// Ref returns the version the usage is of.
func (u *Usage) Ref() VersionRef { return VersionRef{Image: u.Image, Number: u.Number} }

// UsageFilter selects usage rows. Zero fields do not filter.
type UsageFilter struct {
	Environment string
	Image       string
}
