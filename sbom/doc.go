// Package sbom writes the software bill of materials of a version in the
// two standard formats, SPDX 2.3 JSON and CycloneDX 1.6 JSON, from what the
// registry keeps: the installed packages of its provenance (name, version,
// architecture, source package and version), kiln's inputs (definition,
// configuration files, scripts) with their digests, and the version it was
// built on. Licences come from the packages' machine-readable (DEP-5)
// copyright files when the root filesystem is at hand (ReadLicenses);
// everything else is NOASSERTION, and Stats says how many.
//
// Output is deterministic: the same version and licences give the same
// bytes. The creation time is the version's, and the SPDX namespace and
// CycloneDX serial number are name-based UUIDs (version 5) of the
// document's own content (see docID).
//
// It imports only the root package and the standard library (plus a UUID
// library); it reads no database and signs nothing (package sign does).
package sbom
