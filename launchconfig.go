package kiln

// LaunchConfig is the configuration an instance is given when it is
// created, resolved: what the platform delivers. It is never changed on a
// running instance; a new configuration means new instances.
type LaunchConfig struct {
	// Credentials are delivered by name (on the local platform as systemd
	// credentials: a unit in the image reads $CREDENTIALS_DIRECTORY/NAME).
	Credentials []Credential
	// Digest is "sha256:…" over the names and content hashes of the
	// credentials (secrets by reference and content hash); it is what the
	// inventory records, never the content.
	Digest string
	// Source says which definition produced it ("estate:/srv/estate env
	// prod", "dir:/etc/kiln/config/web").
	Source string
}

// Credential is one named piece of configuration. Data of a Secret one is
// never logged nor stored; a platform keeps it out of command lines.
type Credential struct {
	Name   string
	Data   []byte
	Secret bool
}
