// Package bake holds the local platform's image-building tools: mmdebstrap
// bootstraps, provisioning commands run through `systemd-nspawn --pipe`,
// root filesystem and layer tarballs (with overlay whiteouts translated
// both ways), and the dpkg manifest of a root. Overlay mounts are
// internal/overlayfs's, shared with package local.
//
// It knows Linux, overlayfs and nspawn; it knows nothing of image
// definitions, caches or the registry (that is package build). It must not
// boot images (package local does that) and must not leave a mount or a
// process behind when its context is cancelled.
package bake
