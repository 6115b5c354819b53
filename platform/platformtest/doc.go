// Package platformtest is the test suite every kiln.Platform driver must
// pass, and the helpers it needs: a small bootable Debian image with an HTTP
// server (BakeImage, needs mmdebstrap and root) and a directory artifact
// store for tests (DirStore).
//
// It is imported only from tests. It must not hold driver-specific checks:
// a driver passes what only it can do (kill its instance process, list what
// it leaves on the host) through Harness.
package platformtest
