// Package rollout replaces a service's instances with instances of another
// image version without interrupting service: the front end (a loopback
// reverse proxy balancing over healthy instances), health checks, the
// batch-by-batch rollout engine with bake time and automatic rollback, the
// plan behind `kiln fleet refresh`, and drift detection against the image.
//
// Servers are never changed in place here: a rollout launches new
// instances, checks them, puts them in the front end, and only then drains
// and destroys old ones — or puts the old version back. Everything it does
// is recorded first (a member is recorded "launching" before its launch),
// so an interrupted rollout is resumed or rolled back by the next kiln.
//
// It works through the domain interfaces only (kiln.Platform,
// kiln.ServiceStore, kiln.RolloutStore, kiln.Inventory, kiln.Registry) and
// must not import a store, a platform driver, HTTP API or CLI code.
package rollout
