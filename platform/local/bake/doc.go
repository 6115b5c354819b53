// Package bake holds the local platform's image-building tools: mmdebstrap
// bootstraps, provisioning commands run through `systemd-nspawn --pipe`,
// and the dpkg manifest of a root. Layer tarballs (with overlay whiteouts
// translated both ways) are internal/layer's and overlay mounts
// internal/overlayfs's, both shared with package local.
//
// It knows Linux, overlayfs and nspawn; it knows nothing of image
// definitions, caches or the registry (that is package build). It must not
// boot images (package local does that) and must not leave a mount or a
// process behind when its context is cancelled.
package bake
