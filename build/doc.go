// Package build turns an image definition into a registered candidate
// version: a fresh bake (mmdebstrap from a Debian mirror), a reheat (the
// previous version's artifact with the steps applied on top) or a build on
// another image line's version, through a step cache of layers, with
// provenance, progress events and a build log.
//
// Every build works in <dataDir>/build/<id>, holds a lock there, and on
// return (success, failure or cancellation) unmounts and removes it;
// Cleanup removes what a killed process left. Nothing is registered unless
// the whole build succeeded. The package drives the local tools in
// platform/local/bake; it must not boot images (the platform does) nor
// change versions other than the one it creates.
package build
