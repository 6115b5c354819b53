package testenv

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/store"
)

// RehashAuditWithout plays someone who can write to the SQLite database
// at dbPath: it drops the audit log's triggers, deletes entry seq, and
// renumbers and re-hashes the rest so every link is consistent again; with
// dropCheckpoints it also empties the signed checkpoints.
func RehashAuditWithout(t *testing.T, dbPath string, seq int64, dropCheckpoints bool) {
	t.Helper()
	raw, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	qs := []string{`DROP TRIGGER audit_log_no_update`, `DROP TRIGGER audit_log_no_delete`, `DELETE FROM audit_log WHERE seq = ?`}
	if dropCheckpoints {
		qs = append(qs, `DROP TRIGGER audit_checkpoints_no_delete`, `DELETE FROM audit_checkpoints`)
	}
	for _, q := range qs {
		var args []any
		if strings.Contains(q, "?") {
			args = []any{seq}
		}
		if _, err := raw.Exec(q, args...); err != nil {
			t.Fatal(q, err)
		}
	}
	rows, err := raw.Query(`SELECT seq, time, actor, action, target, detail, source, result FROM audit_log ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var es []*kiln.AuditEntry
	for rows.Next() {
		e := &kiln.AuditEntry{}
		var ts string
		if err := rows.Scan(&e.Seq, &ts, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.Source, &e.Result); err != nil {
			t.Fatal(err)
		}
		e.Time, _ = time.Parse("2006-01-02T15:04:05.000000Z", ts)
		es = append(es, e)
	}
	rows.Close()
	prev := ""
	for i, e := range es {
		old := e.Seq
		e.Seq, e.PrevHash = int64(i+1), prev
		e.Hash = store.AuditHash(e)
		if _, err := raw.Exec(`UPDATE audit_log SET seq = ?, prev_hash = ?, hash = ? WHERE seq = ?`, e.Seq, e.PrevHash, e.Hash, old); err != nil {
			t.Fatal(err)
		}
		prev = e.Hash
	}
}
