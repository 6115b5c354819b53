// Package archtest holds the test that keeps the import rules of
// docs/ARCHITECTURE.md true: the root package imports nothing of ours,
// drivers import no use case or interface, only cmd/kiln wires drivers
// in, and test doubles stay out of the product. It runs with go test
// ./..., so CI enforces the rules. It has no code; nothing imports it.
package archtest
