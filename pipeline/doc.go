// Package pipeline carries image versions along build → test → scan →
// ready → delivery. A run is a job in the store's queue (kiln.RunStore):
// any kiln process may claim it, one run per image at a time, and a run
// whose worker dies is marked interrupted and resumed with `kiln run
// retry`. The package holds the stages (the test stage boots a temporary
// instance from the final image; the scan stage matches the package
// manifest against the advisories in the store), the triggers and cron
// schedules `kiln serve` watches, promotion along the delivery channels,
// and the signed webhooks sent on new ready versions and promotions.
//
// It works through the domain interfaces and the build package; it must
// not know how a platform boots an instance or how the store keeps its
// queue.
package pipeline
