package kiln

import (
	"context"
	"strings"
	"time"
)

// FleetCount is one environment's fleet on one day: the numbers the
// dashboard's trend charts draw. kiln serve records them at least daily;
// each day keeps its last recording.
type FleetCount struct {
	// Day is the UTC day (midnight) the counts are of.
	Day         time.Time `json:"day"`
	Environment string    `json:"environment"`
	Instances   int       `json:"instances"`
	// OnLatest counts instances on their image's latest ready version.
	OnLatest int `json:"on_latest_ready"`
	// Exposed counts instances exposed to at least one advisory, by the
	// least severity counted.
	Exposed ExposureCounts `json:"exposed"`
	// OverAge counts instances past their environment's age limit, as
	// the fleet report counts them.
	OverAge    int       `json:"over_age"`
	RecordedAt time.Time `json:"recorded_at"`
}

// ExposureCounts counts exposed instances at or above each severity: Low
// includes Medium, which includes High, which includes Critical.
type ExposureCounts struct {
	Low      int `json:"low"`
	Medium   int `json:"medium"`
	High     int `json:"high"`
	Critical int `json:"critical"`
}

// Severities are the levels trends count exposure at, least first.
var Severities = []string{"low", "medium", "high", "critical"}

// AtLeast returns the count at severity sev (one of Severities); an
// unknown word counts as medium.
func (e ExposureCounts) AtLeast(sev string) int {
	switch strings.ToLower(sev) {
	case "low":
		return e.Low
	case "high":
		return e.High
	case "critical":
		return e.Critical
	}
	return e.Medium
}

// HistoryFilter selects fleet counts. Zero fields do not filter.
type HistoryFilter struct {
	Environment string
	// Since keeps days on or after it.
	Since time.Time
}

// FleetHistory keeps the daily fleet counts. The rows are derived data (a
// report's numbers kept for later), not decisions: they are not audited
// and are pruned after the retention period.
//
// Errors: EINVALID for counts without a day, EUNAVAILABLE when the
// database cannot be reached.
type FleetHistory interface {
	// RecordSnapshot replaces the counts of day (every environment) with
	// counts, in one transaction.
	RecordSnapshot(ctx context.Context, day time.Time, counts []*FleetCount) error
	// ListSnapshots returns counts by day, then environment.
	ListSnapshots(ctx context.Context, f HistoryFilter) ([]*FleetCount, error)
	// PruneSnapshots deletes the counts of days before cutoff and returns
	// how many rows went.
	PruneSnapshots(ctx context.Context, cutoff time.Time) (int, error)
}

// Day returns the UTC midnight starting t's UTC day.
func Day(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}
