// Package verify runs kiln's server tests: files in goss's YAML format that
// say what a machine made from an image must look like (packages installed,
// files with the right mode, services running, ports listening…).
//
// The package has two sides, like goss. The expected side (Parse, ParseFile)
// runs on the host: it reads the YAML, follows gossfile includes and turns
// every attribute into a Check holding a Matcher. Anything kiln does not
// implement — a resource type, an attribute, a matcher, a template — is
// rejected with file:line, never silently ignored, because a test that is
// skipped without saying so is a test that passes without testing.
//
// The probe side (Probe, RunProbeMain) runs inside the instance, as
// `kiln probe` with the Suite as JSON on stdin. It looks at the machine it
// runs on and never changes it; a probe that fails to look becomes a failed
// Result and the run goes on. Run is the host-side caller that execs the
// probe through an Executor and decodes its Report.
//
// The package must not import platform drivers or the store: the caller
// provides the Executor and decides what a failed Report means for an image.
package verify
