package kiln

import (
	"time"
)

// StageKind is what a stage does.
type StageKind string

const (
	StageBuild   StageKind = "build"   // make a candidate version (or find the image up to date)
	StageTest    StageKind = "test"    // boot a temporary instance from the final image and run server tests
	StageScan    StageKind = "scan"    // match the version's packages against known advisories
	StageDeliver StageKind = "deliver" // point an environment's channel at the version
)

// StageStatus is where one stage of a run is.
type StageStatus string

const (
	StagePending     StageStatus = "pending"
	StageRunning     StageStatus = "running"
	StagePassed      StageStatus = "passed"
	StageWarned      StageStatus = "warned" // passed, with findings the policy only warns about
	StageFailed      StageStatus = "failed"
	StageSkipped     StageStatus = "skipped" // nothing to do (the image was up to date)
	StageWaiting     StageStatus = "waiting" // waits for an approval
	StageApproved    StageStatus = "approved"
	StageInterrupted StageStatus = "interrupted"
)

// Passed reports whether a later stage may run after this one.
func (s StageStatus) Passed() bool {
	return s == StagePassed || s == StageWarned || s == StageSkipped
}

// Gate says whether a stage starts by itself or waits for a person.
type Gate string

const (
	GateAuto     Gate = "auto"
	GateApproval Gate = "approval"
)

// Stage is one step of a run, in the order the pipeline declares.
type Stage struct {
	Name string    `json:"name"`
	Kind StageKind `json:"kind"`
	// Environment is the channel a deliver stage promotes to.
	Environment string      `json:"environment,omitempty"`
	Gate        Gate        `json:"gate,omitempty"`
	Status      StageStatus `json:"status"`
	StartedAt   time.Time   `json:"started_at,omitzero"`
	FinishedAt  time.Time   `json:"finished_at,omitzero"`
	// Detail says what the stage found or did, or why it failed.
	Detail string `json:"detail,omitempty"`
	// ApprovedBy names who approved a gated stage.
	ApprovedBy string `json:"approved_by,omitempty"`
}
