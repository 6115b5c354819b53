package kiln

import (
	"context"
	"time"
)

// RolloutSample is what a rollout looked like at one moment: recorded
// about every second while it runs, for the timeline on the dashboard.
type RolloutSample struct {
	Rollout int64        `json:"rollout"`
	At      time.Time    `json:"at"`
	State   RolloutState `json:"state"`
	// Batch counts batches finished so far (in the current direction).
	Batch int `json:"batch"`
	// Versions counts the service's active members per version.
	Versions []VersionCount `json:"versions"`
	// Requests and Errors are the front end's counters as last reported
	// (they only grow while FrontEndPID stays the same); FrontEndPID is 0
	// when no front end has reported.
	Requests    int64 `json:"requests"`
	Errors      int64 `json:"errors"`
	FrontEndPID int   `json:"front_end_pid,omitempty"`
	// HealthPassed and HealthFailed count the health checks the rollout
	// made since the previous sample.
	HealthPassed int `json:"health_passed"`
	HealthFailed int `json:"health_failed"`
}

// VersionCount is how many instances run one version.
type VersionCount struct {
	Version   VersionRef `json:"version"`
	Instances int        `json:"instances"`
}

// RolloutTimeline keeps rollout samples. A rollout store may implement it;
// the rollout engine records samples only then. Like fleet counts,
// samples are observations, not audited, and pruned with the fleet
// history.
type RolloutTimeline interface {
	RecordRolloutSample(ctx context.Context, s *RolloutSample) error
	// RolloutSamples returns a rollout's samples in time order.
	RolloutSamples(ctx context.Context, rollout int64) ([]*RolloutSample, error)
	// PruneRolloutSamples deletes samples taken before cutoff.
	PruneRolloutSamples(ctx context.Context, cutoff time.Time) (int, error)
}
