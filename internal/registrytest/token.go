package registrytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	tokenService = "kiln-test-registry"
	tokenIssuer  = "kiln-test-token-server"
)

// startTokenServer starts a token server on loopback for r (docker's
// token authentication: GET REALM?service=…&scope=repository:NAME:ACTIONS
// with basic auth, answered with a JWT that grants what was asked) and
// returns the registry's auth configuration.
func startTokenServer(tb testing.TB, r *Registry, dir string) string {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(3),
		Subject:               pkix.Name{CommonName: tokenIssuer},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	bundle := filepath.Join(dir, "token-root.pem")
	writeFile(tb, bundle, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r.Tokens = &atomic.Int64{}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, pw, ok := req.BasicAuth()
		if !ok || user != r.User || pw != r.Password {
			w.Header().Set("WWW-Authenticate", `Basic realm="kiln-test-token"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"wrong user or password"}]}`, http.StatusUnauthorized)
			return
		}
		q := req.URL.Query()
		if q.Get("service") != tokenService {
			http.Error(w, "unknown service", http.StatusBadRequest)
			return
		}
		type access struct {
			Type    string   `json:"type"`
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		}
		var grants []access
		for _, sc := range q["scope"] {
			// repository:NAME:ACTIONS (NAME may hold no colon here).
			parts := strings.Split(sc, ":")
			if len(parts) != 3 {
				continue
			}
			grants = append(grants, access{Type: parts[0], Name: parts[1], Actions: strings.Split(parts[2], ",")})
		}
		t := time.Now()
		claims := map[string]any{
			"iss": tokenIssuer, "sub": user, "aud": tokenService,
			"exp": t.Add(5 * time.Minute).Unix(), "nbf": t.Add(-time.Minute).Unix(), "iat": t.Unix(),
			"jti": fmt.Sprint(t.UnixNano()), "access": grants,
		}
		tok, err := signJWT(key, der, claims)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		r.Tokens.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 300, "issued_at": t.UTC().Format(time.RFC3339)})
	})}
	go func() { _ = srv.Serve(l) }()
	tb.Cleanup(func() { _ = srv.Close() })
	r.TokenURL = "http://" + l.Addr().String() + "/token"
	return fmt.Sprintf("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n", r.TokenURL, tokenService, tokenIssuer, bundle)
}

// signJWT signs claims with ES256, the certificate in the x5c header.
func signJWT(key *ecdsa.PrivateKey, cert []byte, claims map[string]any) (string, error) {
	h, err := json.Marshal(map[string]any{"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(cert)}})
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	sum := sha256.Sum256([]byte(input))
	rr, ss, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	rr.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	return input + "." + enc.EncodeToString(sig), nil
}
