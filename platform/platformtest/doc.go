// Package platformtest is the test suite every kiln.Platform driver must
// pass, and the helpers it needs: a small bootable Debian image with an HTTP
// server (BakeImage, needs mmdebstrap and root) and Digest, which hashes a
// stored artifact again.
//
// The suite has two parts. RunContract is what every Platform must do, the
// in-memory test double (platform/memory) included: lifecycle, refusals
// and their error codes, cancelled launches. RunBoot is what only a driver
// that boots the image can show: commands inside, forwarded ports, no
// residue. Run runs both; a real driver runs Run.
//
// It is imported only from tests. It must not hold driver-specific checks:
// a driver passes what only it can do (kill its instance process, list what
// it leaves on the host) through Harness.
package platformtest
