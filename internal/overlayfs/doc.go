// Package overlayfs mounts overlay filesystems and takes mounts down again:
// the one copy of that code for the local platform's instances (an image's
// unpacked artifact under the instance's own changes) and for builds
// (cached layers stacked under a step's upper directory).
//
// An overlay's upper directory is a plain layer: copy-up features that
// write extra overlay xattrs (redirect_dir, metacopy, index) are off, so
// what a build turns into a layer tarball, and what drift detection
// compares with the image, is the files themselves.
//
// It must not unmount anything outside the directory it is given, and it
// reads mount points from /proc/self/mountinfo: this process's mount
// namespace only.
package overlayfs
