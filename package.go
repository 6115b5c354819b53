package kiln

// Package is one installed package of an image, as dpkg reports it.
type Package struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture"`
	// Source is the source package it was built from (openssl for libssl3),
	// when the manifest says; advisories name source packages.
	Source string `json:"source,omitempty"`
	// SourceVersion is the source package's version when it differs from
	// the binary's (a binNMU).
	SourceVersion string `json:"source_version,omitempty"`
}

// PackageManifest is one version's relevant installed packages, with what
// tells its Debian release: the origin source of a fresh bake, or the base
// or parent version it was built on.
type PackageManifest struct {
	Version VersionRef `json:"version"`
	Status  Status     `json:"status"`
	// Origin is the ref of its origin source ("bookworm@http://…" for a
	// Debian bake, "basic-linux-2" for a version built on another).
	Origin   string      `json:"origin,omitempty"`
	Base     *VersionRef `json:"base,omitempty"`
	Parent   *VersionRef `json:"parent,omitempty"`
	Packages []Package   `json:"packages"`
}
