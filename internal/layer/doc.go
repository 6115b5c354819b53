// Package layer is kiln's OCI image layer format, shared by the build
// (platform/local/bake writes root filesystems and overlay upper
// directories as layers) and the local platform (which unpacks them for
// instances): the tar format with OCI whiteouts translated to and from
// overlayfs (tar.go), reproducible gzip layer blobs with their digests and
// diff IDs in a kiln.ArtifactStore, verified reads of gzip, zstd and plain
// layers, and a layered artifact's layer list (layer.go).
//
// It knows tar, compression, overlayfs's whiteout conventions and the
// ArtifactStore interface; it knows nothing of builds, instances or the
// registry.
package layer
