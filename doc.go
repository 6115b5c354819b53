// Package kiln is the domain of the kiln image pipeline and fleet tracker:
// the types every other package speaks (Image, Version, Status, Tag,
// Provenance, Instance, Advisory, Run, Channel, Service, Rollout, …), their
// validation, the error codes callers branch on, and the interfaces the
// drivers implement and the use cases call (Registry, Inventory, Fleet,
// RunStore, ServiceStore, ArtifactStore, Platform, …).
//
// One file per noun: a file holds the type, its Validate, its filter and
// update structs and the interface that stores it (version.go, run.go,
// rollout.go); registry.go holds the Registry of image lines and
// versions, error.go the error codes.
//
// It must not import any other package of this module, nor anything that
// does I/O on its behalf: it knows no database, no HTTP, no platform.
// Everything else depends inward on it; cmd/kiln is where the concrete
// types meet. internal/archtest checks the rule.
package kiln
