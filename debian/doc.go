// Package debian reads what kiln needs to know of Debian archives and dpkg:
// control paragraphs (the deb822 format of dpkg's status file and of apt's
// Packages indexes), a suite's Release file, a suite's Packages indexes
// reduced to the newest version of each package, and dpkg's version
// ordering.
//
// It reads single-line fields only (continuation lines of multi-line
// fields such as Description are skipped), which is all kiln needs:
// package names, versions, architectures, status and source. It does not
// check archive signatures (the Release digest only tells snapshots apart)
// or parse relationship fields, and it knows nothing of image definitions,
// root filesystems or the registry: callers say which mirror, suite and
// components to read.
package debian
