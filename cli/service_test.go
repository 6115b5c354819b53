package cli

import (
	"slices"
	"strings"
	"testing"
)

// The front end gets the locale, PATH, its database and signing key, and
// nothing else of the environment of the kiln that starts it (often kiln
// serve, with tokens and cloud credentials).
func TestFrontEndCommandEnv(t *testing.T) {
	t.Setenv("KILN_TOKEN", "secret-canary")
	t.Setenv("KILN_SERVER", "https://kiln.example")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-canary")
	t.Setenv("LANG", "C.UTF-8")
	t.Setenv("PATH", "/usr/bin:/bin")
	argv, env := FrontEndCommand(Config{DataDir: "/var/lib/kiln", Database: "postgres://kiln:pw@db/kiln", SigningKey: "/etc/kiln/signing.key"})("web")
	if !slices.Equal(argv[1:], []string{"--data-dir", "/var/lib/kiln", "__service-proxy", "web"}) {
		t.Errorf("argv %v", argv)
	}
	for _, kv := range env {
		if strings.Contains(kv, "secret-canary") || strings.HasPrefix(kv, "KILN_SERVER=") {
			t.Errorf("the front end inherits %s", kv)
		}
	}
	for _, kv := range []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "KILN_DATABASE=postgres://kiln:pw@db/kiln", "KILN_SIGNING_KEY=/etc/kiln/signing.key"} {
		if !slices.Contains(env, kv) {
			t.Errorf("env %v lacks %s", env, kv)
		}
	}
	if slices.ContainsFunc(argv, func(a string) bool { return strings.Contains(a, "pw@") }) {
		t.Errorf("the database password is on the command line: %v", argv)
	}
}
