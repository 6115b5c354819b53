package fleet

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

// The agent does not send its token over plain HTTP to a host that is not
// loopback unless told to; loopback and https are fine.
func TestAgentRefusesCleartextTokenOffLoopback(t *testing.T) {
	c := &kiln.Checkin{InstanceID: "i-1", Release: map[string]string{"image": "appserver", "version": "1"}}
	_, err := (&Agent{Server: "http://10.255.255.1:8080", Token: "kiln_secret"}).CheckIn(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "clear text") || !strings.Contains(err.Error(), "--allow-http") {
		t.Fatalf("plain HTTP to 10.255.255.1 with a token: %v, want a refusal naming --allow-http", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer kiln_secret" {
			t.Errorf("Authorization %q", r.Header.Get("Authorization"))
		}
		w.Write([]byte(`{"instance":{"id":"i-1"}}`))
	}))
	defer srv.Close()
	if _, err := (&Agent{Server: srv.URL, Token: "kiln_secret"}).CheckIn(context.Background(), c); err != nil {
		t.Fatalf("loopback: %v", err)
	}
}
