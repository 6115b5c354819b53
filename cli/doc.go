// Package cli holds kiln's cobra commands. It knows flags, arguments, exit
// codes and output formats; it talks to the domain only through the
// interfaces in package kiln, which cmd/kiln wires to a local database or,
// later, to a remote kiln server. It must not open databases or start
// processes itself.
package cli
