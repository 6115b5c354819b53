package cli

import (
	"strings"
	"testing"
)

func TestCheckListen(t *testing.T) {
	for _, c := range []struct {
		opts ServeOptions
		err  string // "" for allowed
	}{
		{ServeOptions{Listen: "127.0.0.1:8080"}, ""},
		{ServeOptions{Listen: "[::1]:8080"}, ""},
		{ServeOptions{Listen: "localhost:8080"}, ""},
		{ServeOptions{Listen: "0.0.0.0:8080"}, "no TLS certificate"},
		{ServeOptions{Listen: ":8080"}, "no TLS certificate"},
		{ServeOptions{Listen: "192.0.2.1:443", TLSCert: "c.pem", TLSKey: "k.pem"}, ""},
		{ServeOptions{Listen: "192.0.2.1:443", TLSCert: "c.pem"}, "both --tls-cert and --tls-key"},
		{ServeOptions{Listen: "0.0.0.0:8080", InsecureListen: true}, ""},
		{ServeOptions{Listen: "nonsense"}, "not HOST:PORT"},
	} {
		err := checkListen(c.opts)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%+v: %v", c.opts, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%+v: %v, want %q", c.opts, err, c.err)
		}
	}
}

// The OpenAPI document's server: --public-url, else --listen with the
// scheme TLS gives; relative ("") when --listen names no single host.
func TestServeAPIURL(t *testing.T) {
	for _, c := range []struct {
		opts ServeOptions
		want string
	}{
		{ServeOptions{Listen: "127.0.0.1:8080"}, "http://127.0.0.1:8080"},
		{ServeOptions{Listen: "[::1]:8080"}, "http://[::1]:8080"},
		{ServeOptions{Listen: "kiln.example.com:443", TLSCert: "c.pem", TLSKey: "k.pem"}, "https://kiln.example.com:443"},
		{ServeOptions{Listen: "0.0.0.0:8080", InsecureListen: true}, ""},
		{ServeOptions{Listen: ":8080"}, ""},
		{ServeOptions{Listen: "127.0.0.1:8080", PublicURL: "https://kiln.example.com/"}, "https://kiln.example.com"},
	} {
		if got := c.opts.APIURL(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.opts, got, c.want)
		}
	}
	for _, bad := range []string{"kiln.example.com", "ftp://kiln.example.com", "https://u:p@kiln.example.com", "https://kiln.example.com/?a=1", "https://"} {
		if err := checkPublicURL(bad); err == nil || !strings.Contains(err.Error(), "--public-url") {
			t.Errorf("%q: %v, want an error naming --public-url", bad, err)
		}
	}
	if err := checkPublicURL("https://kiln.example.com/kiln"); err != nil {
		t.Error(err)
	}
}

// --work: the words, both in either order, none; anything else is
// refused naming --work and the choices.
func TestParseServeWork(t *testing.T) {
	for _, c := range []struct {
		in, want string // want: String() of the result, or a part of the error
		err      bool
	}{
		{"pipelines", "pipelines", false},
		{"rollouts", "rollouts", false},
		{"pipelines,rollouts", "pipelines,rollouts", false},
		{" rollouts , pipelines ", "pipelines,rollouts", false},
		{"none", "none", false},
		{"", "empty item", true},
		{"pipelines,", "empty item", true},
		{"builds", `unknown work "builds"`, true},
		{"api", `unknown work "api"`, true},
		{"none,rollouts", "none cannot be combined", true},
		{"rollouts,rollouts", "named twice", true},
	} {
		w, err := ParseServeWork(c.in)
		switch {
		case c.err && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--work") || !strings.Contains(err.Error(), "pipelines,rollouts, or none")):
			t.Errorf("%q: %v, want an error naming --work with %q", c.in, err, c.want)
		case !c.err && (err != nil || w.String() != c.want || !w.Given):
			t.Errorf("%q: %+v %v, want %s", c.in, w, err, c.want)
		}
	}
}

// The sentence kiln serve logs at start says what the server does and
// what it leaves to others.
func TestServeWorkDescribe(t *testing.T) {
	for _, c := range []struct {
		w             ServeWork
		does, doesNot string
	}{
		{ServeWork{Pipelines: true, Rollouts: true}, "claims queued pipeline runs, resumes interrupted ones", ""},
		{ServeWork{Pipelines: true}, "claims queued pipeline runs", "runs no rollouts"},
		{ServeWork{Rollouts: true}, "runs rollouts, services' front ends, the follower and the autopilot", "claims no pipeline runs and runs no triggers or schedules"},
		{ServeWork{}, "serves the API and the dashboard", "claims no pipeline runs"},
	} {
		got := c.w.Describe()
		if !strings.Contains(got, c.does) || (c.doesNot != "" && !strings.Contains(got, "; it "+c.doesNot)) || (c.doesNot == "" && strings.Contains(got, "; it ")) {
			t.Errorf("%s: %q; want it to say %q and %q", c.w, got, c.does, c.doesNot)
		}
	}
}
