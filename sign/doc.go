// Package sign signs and verifies what kiln records about a version: its
// provenance and artifact digest, as an in-toto Statement v1 inside a DSSE
// envelope, signed with an ed25519 key that kiln keeps under its data
// directory (or that the operator supplies).
//
// The signature binds the registry's record to a key: a row edited in the
// database, an artifact swapped in the store, or an envelope signed by
// another key fails VerifyVersion with a message that says which. The
// envelope is plain DSSE, so consumers verify it without kiln (see
// docs/signing.md for an openssl recipe).
//
// This package must not read the database, the artifact store or the
// network: callers hand it the version and the envelope, and re-hash the
// artifact themselves. It never logs and never puts key material in an
// error message.
package sign
