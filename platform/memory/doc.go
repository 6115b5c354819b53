// Package memory is a kiln.Platform that keeps its instances in memory and
// boots nothing: the test double for the use cases that drive a platform
// (rollouts, launches), held to the same contract as the real drivers by
// platformtest.RunContract. Hooks let a test act while a launch or a
// destroy is under way, or make one fail.
//
// Only tests import it (internal/archtest checks): the product must never
// record an instance that does not exist. It runs no command and forwards
// no port; what needs a booted image is the real drivers' part of the
// suite (platformtest.RunBoot).
package memory
