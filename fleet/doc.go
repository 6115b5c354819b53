// Package fleet answers the questions a team asks about its estate: which
// image versions are in use and by how many instances (Report), which
// instances must be rebuilt for an advisory (Exposed), which break an age
// limit (Overage) and which are behind their image's latest ready version
// (Stale). It also holds the agent side of check-ins, the batching of
// check-ins on the server, and a synthetic fleet generator for benchmarks.
//
// It computes from the aggregate usage rows the store counts in SQL; it
// must not load instances one by one, and it knows no SQL and no HTTP
// beyond the agent's plain client.
package fleet
