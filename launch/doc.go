// Package launch is the one way kiln starts an instance of a version:
// `kiln instance launch`, the pipeline's test stage and every instance a
// rollout adds go through Launcher.Launch. A launch finds the version,
// applies the caller's status rule (Gate), verifies the version's signed
// provenance, boots it on the platform, records the instance in the
// inventory, and destroys it again if any step after the boot fails.
//
// It works through the domain interfaces and the sign package; it must not
// know how a platform boots an instance or where versions are stored.
package launch
