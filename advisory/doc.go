// Package advisory reads security advisories (OSV JSON records and the
// Debian security tracker's JSON export) into kiln.Advisory values, and
// matches them against the package manifests of image versions with
// dpkg's version ordering.
//
// It is pure: it reads files it is given and computes; it never fetches
// feeds from the network, never writes to the store and never decides what
// to rebuild — the fleet package turns findings into exposure reports.
package advisory
