package kiln

import "context"

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
	// Egress are host loopback addresses (127.0.0.1:PORT) the instance
	// reaches at the same address inside it, for what kiln itself declares:
	// the agent's server when it listens on the kiln machine's loopback.
	// Never a general route. The local platform relays them from inside
	// the instance's network namespace, the VM platform through QEMU's
	// guest forwards and the guest agent (docs/vm.md).
	Egress []string
	// AgentTokenSHA256 is the hex SHA-256 of the agent token delivered in
	// the kiln-agent credential (what the token store keeps of a token,
	// never the token), so that the inventory can bind the instance's
	// check-ins to that one token. Empty without an agent token.
	AgentTokenSHA256 string
}

// Credential is one named piece of configuration. Data of a Secret one is
// never logged nor stored; a platform keeps it out of command lines.
type Credential struct {
	Name   string
	Data   []byte
	Secret bool
}

// LaunchConfigRecord is a launch configuration kept so that it can be
// launched again (a rollback puts back the configuration the replaced
// instances were given): the content of its files and its settings, and
// its secrets and the agent's token by reference only — never their
// values, which are read again at each launch. It is kept by Digest.
type LaunchConfigRecord struct {
	Digest   string             `json:"digest"`
	Source   string             `json:"source"`
	Files    []LaunchConfigFile `json:"files,omitempty"`
	Settings map[string]string  `json:"settings,omitempty"`
	Secrets  []SecretRef        `json:"secrets,omitempty"`
	Agent    *AgentRef          `json:"agent,omitempty"`
}

// LaunchConfigFile is a delivered file's name and content (never a
// secret's).
type LaunchConfigFile struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}

// SecretRef names a secret by where it is read from: a file on the kiln
// machine or an environment variable of the launching process.
type SecretRef struct {
	Name string `json:"name"`
	File string `json:"file,omitempty"`
	Env  string `json:"env,omitempty"`
}

// AgentRef is where an instance's kiln agent checks in and where its token
// is read from.
type AgentRef struct {
	Server    string `json:"server"`
	TokenFile string `json:"token_file,omitempty"`
	TokenEnv  string `json:"token_env,omitempty"`
}

// LaunchConfigStore returns launch configurations kept with rollouts
// (CreateRollout keeps them); ENOTFOUND for a digest never kept.
type LaunchConfigStore interface {
	FindLaunchConfig(ctx context.Context, digest string) (*LaunchConfigRecord, error)
}
