package definition

import (
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Config is an environment's launch-time configuration (a `config` block
// in a pipeline's `environment` block): what every instance of the
// pipeline's images launched in that environment is given. It is fried on
// at creation and never changed afterwards; a change rolls the service.
//
// Nothing outside the estate is read here: secrets are references the
// launch resolves on the kiln machine.
type Config struct {
	Range hcl.Range
	// Files are delivered as credentials named after them.
	Files []ConfigFile
	// Settings are KEY=VALUE pairs, delivered together as one env file.
	Settings map[string]string
	// Secrets are delivered as credentials named after them.
	Secrets []ConfigSecret
	// Agent, when set, is the kiln agent's check-in target.
	Agent *ConfigAgent
}

// ConfigFile is one `file "NAME" { source = "…" }` of a config block.
type ConfigFile struct {
	Name string
	// Source is relative to the estate directory, Path the same resolved
	// (absolute), and Digest its content's digest when the estate loaded.
	Source, Path, Digest string
	Range                hcl.Range
}

// ConfigSecret is one `secret "NAME" { file = "…" }` or `{ env = "…" }`:
// exactly one of File (absolute, on the kiln machine) and Env (a variable
// of the launching process) is set.
type ConfigSecret struct {
	Name, File, Env string
	Range           hcl.Range
}

// ConfigAgent is an `agent { server = "…" token_file = "…" }` block: where
// the instance's kiln agent checks in, and the token it uses (a secret
// reference like ConfigSecret's; both may be empty for no token).
type ConfigAgent struct {
	Server              string
	TokenFile, TokenEnv string
	Range               hcl.Range
}

// Names a config may not use: the platform delivers these itself.
const (
	SettingsCredential = "kiln-settings"
	AgentCredential    = "kiln-agent"
)

var (
	// credentialRE is what systemd accepts as a credential name and what
	// is also a plain file name everywhere.
	credentialRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	settingRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// ValidCredentialName reports why name cannot name a delivered file or
// secret, or nil.
func ValidCredentialName(name string) error {
	if !credentialRE.MatchString(name) {
		return fmt.Errorf("%q is not a credential name; use 1–64 letters, digits and ._-, starting with a letter or digit (e.g. banner.txt)", name)
	}
	if name == SettingsCredential || name == AgentCredential {
		return fmt.Errorf("%q is kiln's own credential name; choose another", name)
	}
	return nil
}

// ValidSetting reports why KEY=VALUE cannot be a setting, or nil.
func ValidSetting(key, value string) error {
	if !settingRE.MatchString(key) {
		return fmt.Errorf("setting name %q is not an environment variable name; use letters, digits and _ (e.g. LOG_LEVEL)", key)
	}
	if strings.ContainsAny(value, "\n\r\x00") {
		return fmt.Errorf("setting %s has a line break or NUL in its value; deliver multi-line values as a file", key)
	}
	return nil
}

var (
	configSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "settings"}},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "file", LabelNames: []string{"name"}},
			{Type: "secret", LabelNames: []string{"name"}},
			{Type: "agent"},
		},
	}
	configFileSchema   = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "source", Required: true}}}
	configSecretSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "file"}, {Name: "env"}}}
	configAgentSchema  = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "server", Required: true}, {Name: "token_file"}, {Name: "token_env"}}}
)

// decodeConfig reads one config block.
func (l *loader) decodeConfig(block *hcl.Block) (*Config, hcl.Diagnostics) {
	c := &Config{Range: blockRange(block), Settings: map[string]string{}}
	content, diags := block.Body.Content(configSchema)
	var d hcl.Diagnostics
	seen := map[string]hcl.Range{}
	name := func(b *hcl.Block) (string, bool) {
		n := b.Labels[0]
		if err := ValidCredentialName(n); err != nil {
			diags = append(diags, rangeError(b.LabelRanges[0], "Invalid name", err.Error()+"."))
			return n, false
		}
		if prev, ok := seen[n]; ok {
			diags = append(diags, rangeError(b.LabelRanges[0], "Duplicate name",
				fmt.Sprintf("%q is already delivered at %s; each file and secret needs its own name.", n, pos(prev))))
			return n, false
		}
		seen[n] = b.LabelRanges[0]
		return n, true
	}
	if a, ok := content.Attributes["settings"]; ok {
		c.Settings, d = attrStringMap(a, l.ctx, `{ LOG_LEVEL = "info" }`)
		diags = append(diags, d...)
		for _, k := range slices.Sorted(maps.Keys(c.Settings)) {
			if err := ValidSetting(k, c.Settings[k]); err != nil {
				diags = append(diags, attrError(a, "Invalid setting", err.Error()+"."))
			}
		}
	}
	for _, b := range content.Blocks.OfType("file") {
		n, _ := name(b)
		fc, d := b.Body.Content(configFileSchema)
		diags = append(diags, d...)
		f := ConfigFile{Name: n, Range: blockRange(b)}
		if a, ok := fc.Attributes["source"]; ok {
			f.Source, d = attrString(a, l.ctx, `"config/prod/banner.txt"`)
			diags = append(diags, d...)
			if !d.HasErrors() {
				p, diag := l.resolvePath(f.Source, a.Expr.Range(), "config file")
				if diag != nil {
					diags = append(diags, diag)
				} else {
					f.Path = p
					var err error
					if f.Digest, err = l.fileDigest(p); err != nil {
						diags = append(diags, attrError(a, "Cannot read file", err.Error()+"."))
					}
				}
			}
		}
		c.Files = append(c.Files, f)
	}
	for _, b := range content.Blocks.OfType("secret") {
		n, _ := name(b)
		sc, d := b.Body.Content(configSecretSchema)
		diags = append(diags, d...)
		s := ConfigSecret{Name: n, Range: blockRange(b)}
		s.File, s.Env, d = l.secretRef(sc.Attributes["file"], sc.Attributes["env"], b.DefRange, true)
		diags = append(diags, d...)
		c.Secrets = append(c.Secrets, s)
	}
	for i, b := range content.Blocks.OfType("agent") {
		if i > 0 {
			diags = append(diags, rangeError(b.DefRange, "Duplicate agent block", "a config has one agent block; remove the others."))
			continue
		}
		ac, d := b.Body.Content(configAgentSchema)
		diags = append(diags, d...)
		ag := &ConfigAgent{Range: blockRange(b)}
		if a, ok := ac.Attributes["server"]; ok {
			ag.Server, d = attrString(a, l.ctx, `"http://127.0.0.1:8088"`)
			diags = append(diags, d...)
			if !strings.HasPrefix(ag.Server, "http://") && !strings.HasPrefix(ag.Server, "https://") {
				diags = append(diags, attrError(a, "Invalid agent server", fmt.Sprintf("server %q is not an http(s) URL; write the address of `kiln serve`, e.g. \"https://kiln.example.org\".", ag.Server)))
			}
		}
		ag.TokenFile, ag.TokenEnv, d = l.secretRef(ac.Attributes["token_file"], ac.Attributes["token_env"], b.DefRange, false)
		diags = append(diags, d...)
		c.Agent = ag
	}
	return c, diags
}

// secretRef reads a secret reference: a file on the kiln machine or an
// environment variable of the launching process, one of them (or neither
// when !required).
func (l *loader) secretRef(file, env *hcl.Attribute, at hcl.Range, required bool) (string, string, hcl.Diagnostics) {
	var diags, d hcl.Diagnostics
	var f, e string
	if file != nil {
		f, d = attrString(file, l.ctx, `"/etc/kiln/secrets/db"`)
		diags = append(diags, d...)
		if !d.HasErrors() && (!filepath.IsAbs(f) || strings.ContainsRune(f, 0)) {
			diags = append(diags, attrError(file, "Secret file not absolute",
				fmt.Sprintf("%q is not an absolute path; secrets live outside the estate, on the kiln machine: write e.g. \"/etc/kiln/secrets/db\".", f)))
		}
	}
	if env != nil {
		e, d = attrString(env, l.ctx, `"DB_PASSWORD"`)
		diags = append(diags, d...)
		if !d.HasErrors() && !settingRE.MatchString(e) {
			diags = append(diags, attrError(env, "Invalid variable name", fmt.Sprintf("%q is not an environment variable name.", e)))
		}
	}
	switch {
	case file != nil && env != nil:
		diags = append(diags, rangeError(at, "Two secret sources", "give the secret's file or its env, not both."))
	case required && file == nil && env == nil:
		diags = append(diags, rangeError(at, "Secret without source",
			"say where the secret is: file = \"/etc/kiln/secrets/NAME\" (a file on the kiln machine) or env = \"VARIABLE\" (the launching process's environment)."))
	}
	return f, e, diags
}

// ConfigFor returns the configuration the estate declares for instances
// of image in env: the config block of env in the image's pipeline, or
// nil when there is none.
func (e *Estate) ConfigFor(image, env string) *Config {
	for _, en := range e.PipelineFor(image).Environments {
		if en.Name == env {
			return en.Config
		}
	}
	return nil
}
