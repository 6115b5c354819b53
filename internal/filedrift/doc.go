// Package filedrift is what drift detection compares on every platform:
// the paths where a running system writes as a matter of course
// (VolatilePaths and the image's own patterns, definition.VolatileFile),
// the rule for when a file differs from the image's (type, mode, owner,
// link target, content), and, for platforms whose instances write into a
// disk the host cannot read (platform/vm), a manifest of the image's root
// filesystem and the comparison of a live tree with it, run inside the
// instance by its own kiln binary (GuestMain, the hidden command
// GuestCommand).
//
// rollout compares a local instance's overlay with the image through the
// same rules; platform/vm builds manifests and asks the guest. The package
// must not write to the tree it compares, nor follow symlinks out of it.
package filedrift
