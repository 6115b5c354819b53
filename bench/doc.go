// Package bench is `kiln bench all`: every figure the project measures,
// taken in one process on throwaway data directories and databases, each
// beside its reference run and its target, with the machine and its load.
//
// A Measure takes one or more Figures; Run runs the selected measures in
// order, bounded by the context, and a failing measure is reported (its
// error kept in the report) without stopping the others. The report
// prints as a table, as JSON, and as the Markdown section that
// docs/benchmarks.md keeps between two marker lines (UpdateDoc).
//
// Nothing here asserts a time: figures are reported, and "met" is
// computed against the target for the reader.
package bench
