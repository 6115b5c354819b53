// Package definition reads an estate — a directory of *.kiln.hcl files —
// into validated image specifications: variables and locals evaluated,
// every image's origin, packages and provisioning steps checked, file and
// script paths resolved inside the estate directory, content digests
// computed, and the images ordered so that a base comes before the images
// built on it.
//
// It reports every problem it finds as an hcl.Diagnostic with the file,
// line and column at fault, not just the first.
//
// It must not build, fetch or run anything: it reads the estate directory
// (and the variable files it is given) and nothing else. It never follows a
// path out of the estate directory.
package definition
