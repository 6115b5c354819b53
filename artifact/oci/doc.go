// Package oci keeps kiln's artifacts in an OCI registry (distribution,
// Harbor, Zot, ECR, GHCR, Artifactory…), named by a URL
// oci://HOST[:PORT]/REPOSITORY.
//
// It implements kiln.ArtifactStore with the repository's blobs, and adds
// the version-level operations: a version is pushed as a standard OCI
// image (REPOSITORY/IMAGE:N and its semver tag) whose config labels say
// what it is, with its DSSE provenance envelope attached as an OCI 1.1
// referrer (the sha256-<hex> tag schema where the registry has no
// referrers API); a version is pulled by reference with every layer's
// digest checked while it streams.
//
// It talks to the registry with oras-go (docs/DEPENDENCIES.md says why).
// It imports only the root package kiln and libraries, and knows nothing
// about what a layer contains: that is the build and platform packages'
// business. Every failure is a *kiln.Error naming the registry URL, the
// reference and what to do.
package oci
