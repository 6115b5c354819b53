// Package autopilot closes the patching loop: the refresh that makes the
// fix (plan the rollouts, start the pipeline run that builds a version
// with the fix when no ready one has it, wait for it, roll out) and
// kiln serve's automatic refresh of the environments whose estate says
// refresh { auto = true }.
//
// It orchestrates use cases that live elsewhere (rollout.Refresh plans,
// the pipeline's queue builds, a RolloutStarter rolls out) and reaches
// them through function fields, so the CLI runs them in its process and
// kiln serve in its background; it opens no store and starts no process
// itself.
package autopilot
