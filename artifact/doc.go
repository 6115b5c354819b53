// Package artifact is kiln's local content-addressed artifact store: image
// root filesystem tarballs and cached build layers kept under
// <dataDir>/artifacts/sha256/<hex>, named by the sha256 of their content.
//
// It implements kiln.ArtifactStore. It knows nothing about what an artifact
// contains (that is the build package's business) and never trusts a file on
// disk: every read re-computes the digest. It must not hold state outside the
// directory, so several kiln processes on one machine can share it.
package artifact
