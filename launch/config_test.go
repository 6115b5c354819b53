package launch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveConfig(t *testing.T) {
	dir := t.TempDir()
	banner := filepath.Join(dir, "banner.txt")
	secret := filepath.Join(dir, "db")
	os.WriteFile(banner, []byte("hello prod\n"), 0o644)
	os.WriteFile(secret, []byte("hunter2-very-secret"), 0o600)
	env := map[string]string{"API_KEY": "key-from-env", "AGENT_TOKEN": "kiln_tok"}
	getenv := func(k string) string { return env[k] }
	c := &Config{
		Source:   "estate:/e env prod",
		Files:    []File{{Name: "banner.txt", Path: banner}},
		Settings: map[string]string{"LOG_LEVEL": "info", "MOTD": `say "hi" $HOME`},
		Secrets:  []Secret{{Name: "db-password", File: secret}, {Name: "api-key", Env: "API_KEY"}},
		Agent:    &Agent{Server: "http://127.0.0.1:8088", TokenEnv: "AGENT_TOKEN"},
	}
	got, err := c.Resolve("prod", "web-1", getenv)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	data := map[string]string{}
	for _, cr := range got.Credentials {
		names = append(names, cr.Name)
		data[cr.Name] = string(cr.Data)
		if want := cr.Name == "db-password" || cr.Name == "api-key" || cr.Name == "kiln-agent"; cr.Secret != want {
			t.Errorf("%s: Secret = %v", cr.Name, cr.Secret)
		}
	}
	if strings.Join(names, " ") != "api-key banner.txt db-password kiln-agent kiln-settings" {
		t.Errorf("credentials = %v", names)
	}
	if want := "LOG_LEVEL=\"info\"\nMOTD=\"say \\\"hi\\\" \\$HOME\"\n"; data["kiln-settings"] != want {
		t.Errorf("settings = %q, want %q", data["kiln-settings"], want)
	}
	if want := "KILN_SERVER=\"http://127.0.0.1:8088\"\nKILN_ENV=\"prod\"\nKILN_TOKEN=\"kiln_tok\"\nKILN_INSTANCE_ID=\"web-1\"\n"; data["kiln-agent"] != want {
		t.Errorf("agent = %q", data["kiln-agent"])
	}
	if got.Source != c.Source || !strings.HasPrefix(got.Digest, "sha256:") {
		t.Errorf("source %q digest %q", got.Source, got.Digest)
	}

	// The same inputs give the same digest; any change, secrets included,
	// gives another; the secret is not in what is recorded.
	again, _ := c.Resolve("prod", "web-1", getenv)
	if again.Digest != got.Digest {
		t.Error("digest is not stable")
	}
	if other, _ := c.Resolve("prod", "web-2", getenv); other.Digest != got.Digest {
		t.Error("another instance of the same configuration has another digest")
	}
	os.WriteFile(secret, []byte("rotated"), 0o600)
	rotated, err := c.Resolve("prod", "web-1", getenv)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Digest == got.Digest {
		t.Error("a rotated secret did not change the digest")
	}
	env["API_KEY"] = "other"
	if d, _ := c.Resolve("prod", "web-1", getenv); d.Digest == rotated.Digest {
		t.Error("a changed env secret did not change the digest")
	}
	for _, s := range []string{"hunter2", "key-from-env", "kiln_tok"} {
		if strings.Contains(got.Digest+got.Source, s) {
			t.Errorf("secret %q in the record", s)
		}
	}
}

func TestResolveConfigErrors(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "a")
	os.WriteFile(f, []byte("a"), 0o644)
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, MaxCredential+1), 0o644)
	none := func(string) string { return "" }
	for _, tc := range []struct {
		name string
		c    *Config
		want string
	}{
		{"missing file", &Config{Files: []File{{Name: "x", Path: filepath.Join(dir, "nope")}}}, "no such file"},
		{"changed estate file", &Config{Files: []File{{Name: "x", Path: f, Digest: "sha256:00"}}}, "changed since the estate was loaded"},
		{"too big", &Config{Files: []File{{Name: "x", Path: big}}}, "larger than"},
		{"duplicate", &Config{Files: []File{{Name: "x", Path: f}}, Secrets: []Secret{{Name: "x", File: f}}}, "delivered twice"},
		{"unset env", &Config{Secrets: []Secret{{Name: "db", Env: "DB_PASSWORD"}}}, "DB_PASSWORD is not set"},
		{"bad setting", &Config{Settings: map[string]string{"A": "x\ny"}}, "line break"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.Resolve("dev", "i", none)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	var nilc *Config
	if got, err := nilc.Resolve("dev", "i", none); got != nil || err != nil {
		t.Errorf("nil config: %v %v", got, err)
	}
}

func TestConfigFromPath(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "banner.txt"), []byte("b"), 0o644)
	os.WriteFile(filepath.Join(dir, "app.conf"), []byte("c"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	c, err := ConfigFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Files) != 2 || c.Files[0].Name != "app.conf" || c.Source != "dir:"+dir {
		t.Errorf("config = %+v", c)
	}
	c, err = ConfigFromPath(filepath.Join(dir, "banner.txt"))
	if err != nil || len(c.Files) != 1 || c.Files[0].Name != "banner.txt" {
		t.Errorf("file config = %+v, %v", c, err)
	}
	if _, err := ConfigFromPath(filepath.Join(dir, "sub")); err == nil {
		t.Error("an empty directory was accepted")
	}
}

// TestResolveConfigEgress: an agent server on the kiln machine's loopback
// gets egress to exactly that address; any other server, none.
func TestResolveConfigEgress(t *testing.T) {
	for server, want := range map[string]string{
		"http://127.0.0.1:8088":        "127.0.0.1:8088",
		"http://localhost:9000/":       "127.0.0.1:9000",
		"https://[::1]:8443":           "[::1]:8443",
		"http://127.0.0.1":             "127.0.0.1:80",
		"https://127.0.0.2/kiln":       "127.0.0.2:443",
		"https://kiln.example.org:443": "",
		"http://10.0.0.5:8088":         "",
		"http://0.0.0.0:8088":          "",
	} {
		c := &Config{Agent: &Agent{Server: server}}
		got, err := c.Resolve("dev", "i-1", func(string) string { return "" })
		if err != nil {
			t.Fatalf("%s: %v", server, err)
		}
		if strings.Join(got.Egress, " ") != want {
			t.Errorf("%s: egress %v, want %q", server, got.Egress, want)
		}
	}
	if got, _ := (&Config{Settings: map[string]string{"A": "b"}}).Resolve("dev", "i-1", nil); len(got.Egress) != 0 {
		t.Errorf("no agent: egress %v", got.Egress)
	}
}
