// Package cli holds kiln's cobra commands. It knows flags, arguments, exit
// codes and output formats; it works on the stores and use cases cmd/kiln
// builds for it (Services): a local database and platform, or a remote
// kiln server (--server). It must not open databases, build use cases or
// start processes itself.
package cli
