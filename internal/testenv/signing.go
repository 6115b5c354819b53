package testenv

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// Sign makes db seal every version it records from now on with a fresh
// signing key, as kiln does, and returns the key's public half: what a
// launch.Launcher verifies with.
func Sign(t testing.TB, db *store.DB) crypto.PublicKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := sign.NewSigner(key)
	db.SealVersionsWith(s.Seal)
	return s.Public()
}

// SwapArtifact tampers with the SQLite registry in dataDir as someone with
// write access to the database could: every version recorded with the
// artifact digest from now names digest to, past the trigger that keeps
// provenance write-once. The versions' signatures still name from.
func SwapArtifact(t testing.TB, dataDir, from, to string) {
	t.Helper()
	raw, err := sql.Open("sqlite", filepath.Join(dataDir, "kiln.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`DROP TRIGGER IF EXISTS provenance_no_update`); err != nil {
		t.Fatal(err)
	}
	res, err := raw.Exec(`UPDATE provenance SET artifact_digest = ? WHERE artifact_digest = ?`, to, from)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("no version records artifact %s", from)
	}
}
