package launch

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
)

// Config is configuration declared for a launch and not yet read: files
// on the kiln machine, settings, and references to secrets. Resolve reads
// it, once, just before the launch; the instance is given what was read
// and never anything later.
type Config struct {
	// Source says what declared it; the inventory records it.
	Source   string
	Files    []File
	Settings map[string]string
	Secrets  []Secret
	// Agent, when set, is delivered as the kiln-agent credential.
	Agent *Agent
}

// File is a file delivered as the credential Name. Digest, when set, is
// the content's digest when it was declared (an estate file): a file that
// changed since is refused. A File without a Path delivers Data (a
// configuration kept with a rollout, launched again by its rollback).
type File struct {
	Name, Path, Digest string
	Data               []byte
}

// Secret is a reference to a secret: a file on the kiln machine or a
// variable of this process's environment (exactly one).
type Secret struct {
	Name, File, Env string
}

// Agent is where an instance's kiln agent checks in and with which token
// (a reference like Secret's; both empty for none).
type Agent struct {
	Server, TokenFile, TokenEnv string
}

// MaxCredential bounds one delivered credential (systemd refuses larger).
const MaxCredential = 1 << 20

// ConfigFromEstate is the launch configuration an estate declares;
// source names the estate and environment. nil gives nil.
func ConfigFromEstate(c *definition.Config, source string) *Config {
	if c == nil {
		return nil
	}
	out := &Config{Source: source, Settings: maps.Clone(c.Settings)}
	for _, f := range c.Files {
		out.Files = append(out.Files, File{Name: f.Name, Path: f.Path, Digest: f.Digest})
	}
	for _, s := range c.Secrets {
		out.Secrets = append(out.Secrets, Secret{Name: s.Name, File: s.File, Env: s.Env})
	}
	if c.Agent != nil {
		out.Agent = &Agent{Server: c.Agent.Server, TokenFile: c.Agent.TokenFile, TokenEnv: c.Agent.TokenEnv}
	}
	return out
}

// ConfigFromPath is the configuration `--config PATH` gives: every regular
// file of the directory PATH (not its subdirectories), or the file PATH,
// each delivered under its own name.
func ConfigFromPath(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "--config", "%v; give a directory of configuration files or one file", err)
	}
	c := &Config{Source: "dir:" + abs}
	if !fi.IsDir() {
		c.Source = "file:" + abs
		return c, c.addFile(filepath.Base(abs), abs)
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "--config", "%v", err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			if err := c.addFile(e.Name(), filepath.Join(abs, e.Name())); err != nil {
				return nil, err
			}
		}
	}
	if len(c.Files) == 0 {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "--config", "%s holds no regular files to deliver", abs)
	}
	return c, nil
}

func (c *Config) addFile(name, path string) error {
	if err := definition.ValidCredentialName(name); err != nil {
		return kiln.FieldErrorf(kiln.EINVALID, "--config", "file %s: %v", path, err)
	}
	c.Files = append(c.Files, File{Name: name, Path: path})
	return nil
}

// Resolve reads the configuration (files, and secrets from files or from
// getenv) for an instance of env and returns what the platform delivers,
// with its digest. The digest covers, per credential sorted by name, its
// name and the SHA-256 of its content; a secret also by its reference
// (file:PATH or env:NAME). A secret's content enters only as its hash,
// so the digest — recorded, shown, logged — never holds it; yet a rotated
// secret changes the digest, so the fleet tells the instances given the
// old one from the new, and rotating it is a rollout.
//
// The agent credential also names the instance (KILN_INSTANCE_ID=id, so
// its check-ins update the launched instance's record); that line is not
// in the digest, which is the same for every instance given the same
// configuration.
func (c *Config) Resolve(env, id string, getenv func(string) string) (*kiln.LaunchConfig, error) {
	if c == nil {
		return nil, nil
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	out := &kiln.LaunchConfig{Source: c.Source}
	refs := map[string]string{}   // credential → reference, for secrets
	hashed := map[string][]byte{} // credential → what its digest covers, when not its content
	seen := map[string]bool{}
	add := func(name string, data []byte, secret bool, ref string) error {
		if seen[name] {
			return kiln.FieldErrorf(kiln.EINVALID, "config", "%q is delivered twice; each file and secret needs its own name", name)
		}
		if len(data) > MaxCredential {
			return kiln.FieldErrorf(kiln.EINVALID, "config", "%q is %d bytes; a credential is at most %d", name, len(data), MaxCredential)
		}
		seen[name] = true
		out.Credentials = append(out.Credentials, kiln.Credential{Name: name, Data: data, Secret: secret})
		if secret {
			refs[name] = ref
		}
		return nil
	}
	for _, f := range c.Files {
		b := f.Data
		if f.Path != "" {
			var err error
			if b, err = readLimited(f.Path); err != nil {
				return nil, kiln.FieldErrorf(kiln.EINVALID, "config", "file %q: %v", f.Name, err)
			}
		}
		if f.Digest != "" && digestOf(b) != f.Digest {
			return nil, kiln.FieldErrorf(kiln.ECONFLICT, "config", "file %q (%s) changed since the estate was loaded; load it again", f.Name, f.Path)
		}
		if err := add(f.Name, b, false, ""); err != nil {
			return nil, err
		}
	}
	if len(c.Settings) > 0 {
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(c.Settings)) {
			if err := definition.ValidSetting(k, c.Settings[k]); err != nil {
				return nil, kiln.FieldErrorf(kiln.EINVALID, "config", "%v", err)
			}
			fmt.Fprintf(&b, "%s=%s\n", k, envQuote(c.Settings[k]))
		}
		if err := add(definition.SettingsCredential, []byte(b.String()), false, ""); err != nil {
			return nil, err
		}
	}
	for _, s := range c.Secrets {
		b, ref, err := readSecret(s.File, s.Env, getenv)
		if err != nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "config", "secret %q: %v", s.Name, err)
		}
		if err := add(s.Name, b, true, ref); err != nil {
			return nil, err
		}
	}
	if a := c.Agent; a != nil {
		var b strings.Builder
		fmt.Fprintf(&b, "KILN_SERVER=%s\n", envQuote(a.Server))
		if env != "" {
			fmt.Fprintf(&b, "KILN_ENV=%s\n", envQuote(env))
		}
		ref := "server:" + a.Server + " env:" + env
		var tokData []byte
		if a.TokenFile != "" || a.TokenEnv != "" {
			tok, tref, err := readSecret(a.TokenFile, a.TokenEnv, getenv)
			if err != nil {
				return nil, kiln.FieldErrorf(kiln.EINVALID, "config", "agent token: %v", err)
			}
			t := strings.TrimSpace(string(tok))
			if strings.ContainsAny(t, "\n\r\x00") {
				return nil, kiln.FieldErrorf(kiln.EINVALID, "config", "agent token (%s) is more than one line", tref)
			}
			fmt.Fprintf(&b, "KILN_TOKEN=%s\n", envQuote(t))
			ref += " token:" + tref
			tokData = []byte(t)
			sum := sha256.Sum256(tokData)
			out.AgentTokenSHA256 = hex.EncodeToString(sum[:])
		}
		hashed[definition.AgentCredential] = tokData
		if id != "" {
			fmt.Fprintf(&b, "KILN_INSTANCE_ID=%s\n", envQuote(id))
		}
		if err := add(definition.AgentCredential, []byte(b.String()), true, ref); err != nil {
			return nil, err
		}
		if addr := loopbackEgress(a.Server); addr != "" {
			out.Egress = []string{addr}
		}
	}
	slices.SortFunc(out.Credentials, func(a, b kiln.Credential) int { return strings.Compare(a.Name, b.Name) })
	h := sha256.New()
	fmt.Fprintln(h, "kiln launch config v1")
	for _, cr := range out.Credentials {
		data := cr.Data
		if d, ok := hashed[cr.Name]; ok {
			data = d
		}
		if cr.Secret {
			fmt.Fprintf(h, "secret %s %s %s\n", cr.Name, refs[cr.Name], digestOf(data))
		} else {
			fmt.Fprintf(h, "file %s %s\n", cr.Name, digestOf(cr.Data))
		}
	}
	out.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return out, nil
}

// Record is the configuration as a rollout keeps it, to launch it again:
// res is what Resolve gave for it (the files' content and the digest come
// from there). Secrets and the agent's token stay references; their values
// are read again at each launch.
func (c *Config) Record(res *kiln.LaunchConfig) *kiln.LaunchConfigRecord {
	if c == nil || res == nil {
		return nil
	}
	rec := &kiln.LaunchConfigRecord{Digest: res.Digest, Source: c.Source, Settings: maps.Clone(c.Settings)}
	files := map[string]bool{}
	for _, f := range c.Files {
		files[f.Name] = true
	}
	for _, cr := range res.Credentials {
		if files[cr.Name] && !cr.Secret {
			rec.Files = append(rec.Files, kiln.LaunchConfigFile{Name: cr.Name, Data: slices.Clone(cr.Data)})
		}
	}
	for _, s := range c.Secrets {
		rec.Secrets = append(rec.Secrets, kiln.SecretRef{Name: s.Name, File: s.File, Env: s.Env})
	}
	if c.Agent != nil {
		rec.Agent = &kiln.AgentRef{Server: c.Agent.Server, TokenFile: c.Agent.TokenFile, TokenEnv: c.Agent.TokenEnv}
	}
	return rec
}

// ConfigFromRecord is a kept configuration, to launch again: its files
// from their kept content, its secrets read again from their references.
// Resolved, it gives the kept digest unless a secret changed since.
func ConfigFromRecord(rec *kiln.LaunchConfigRecord) *Config {
	if rec == nil {
		return nil
	}
	c := &Config{Source: rec.Source, Settings: maps.Clone(rec.Settings)}
	for _, f := range rec.Files {
		c.Files = append(c.Files, File{Name: f.Name, Data: f.Data})
	}
	for _, s := range rec.Secrets {
		c.Secrets = append(c.Secrets, Secret{Name: s.Name, File: s.File, Env: s.Env})
	}
	if a := rec.Agent; a != nil {
		c.Agent = &Agent{Server: a.Server, TokenFile: a.TokenFile, TokenEnv: a.TokenEnv}
	}
	return c
}

// loopbackEgress is the host address an instance needs egress to for an
// agent server on the kiln machine's loopback (http://127.0.0.1:PORT,
// http://[::1]:PORT, http://localhost:PORT): HOST:PORT, with localhost as
// 127.0.0.1 and the scheme's port when none is given. Any other server
// (or one that does not parse; the estate validated it) gives "": the
// instance reaches it, or not, by the platform's own network.
func loopbackEgress(server string) string {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return ""
	}
	host := u.Hostname()
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return net.JoinHostPort(ip.String(), port)
}

// readSecret reads a secret from file or from the environment variable
// env, and returns it with its reference.
func readSecret(file, env string, getenv func(string) string) ([]byte, string, error) {
	switch {
	case file != "":
		b, err := readLimited(file)
		if err != nil {
			return nil, "", err
		}
		return b, "file:" + file, nil
	case env != "":
		v := getenv(env)
		if v == "" {
			return nil, "", fmt.Errorf("the environment variable %s is not set (or empty); set it in the environment of the process that launches", env)
		}
		return []byte(v), "env:" + env, nil
	}
	return nil, "", fmt.Errorf("no file nor env given")
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxCredential+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > MaxCredential {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxCredential)
	}
	return b, nil
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// envQuote writes v as a double-quoted value both systemd's
// EnvironmentFile= and a POSIX shell's "." read back as v.
func envQuote(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`")
	return `"` + r.Replace(v) + `"`
}
