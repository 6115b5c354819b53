package cli

import (
	"os/user"
	"testing"
)

// Under sudo the audit log names the person behind root, not just root.
func TestLocalActorRecordsSudoUser(t *testing.T) {
	root := func() (*user.User, error) { return &user.User{Username: "root"}, nil }
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{nil, "local:root"},
		{map[string]string{"SUDO_USER": "alice"}, "local:root (sudo by alice)"},
		{map[string]string{"SUDO_USER": "root"}, "local:root"},
	} {
		if got := localActor(root, 0, env(tt.env)); got != tt.want {
			t.Errorf("env %v: %q, want %q", tt.env, got, tt.want)
		}
	}
}
