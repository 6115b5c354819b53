// Package feed keeps advisory sources current: it fetches each source
// (`kiln advisory source add`) over HTTP with conditional requests, reads
// it with the advisory package's parsers as a stream into a spool file,
// and replaces the advisories that source brought in one transaction that
// reads the spool back a chunk at a time: the memory a sync takes grows
// with the number of ids, not with the advisories. A source that fails
// (unreachable, an HTTP error, a malformed file) keeps its previous
// advisories and records why.
//
// kiln serve runs Run in the background; `kiln advisory source sync` calls
// Sync directly.
package feed
