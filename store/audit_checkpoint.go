package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB keeps audit checkpoints.
var _ kiln.AuditCheckpoints = (*DB)(nil)

// AuditHead returns the newest audit entry's sequence number and hash.
func (db *DB) AuditHead(ctx context.Context) (kiln.AuditAnchor, error) {
	var a kiln.AuditAnchor
	err := db.read(ctx, func(tx *tx) error {
		err := tx.queryRow(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&a.Seq, &a.Hash)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return kiln.AuditAnchor{}, fmt.Errorf("read the audit log's head: %w", err)
	}
	return a, nil
}

// AddAuditCheckpoint keeps a signed checkpoint after checking, in the same
// transaction, that the log's entry cp.Seq has the hash it vouches for. A
// second checkpoint of the same entry is a no-op.
func (db *DB) AddAuditCheckpoint(ctx context.Context, cp *kiln.AuditCheckpoint) error {
	if cp.Seq <= 0 || cp.Hash == "" || len(cp.Envelope) == 0 {
		return kiln.Errorf(kiln.EINVALID, "an audit checkpoint needs an entry number, its hash and a signed envelope")
	}
	return db.write(ctx, func(tx *tx) error {
		var hash string
		err := tx.queryRow(ctx, `SELECT hash FROM audit_log WHERE seq = ?`, cp.Seq).Scan(&hash)
		if errors.Is(err, sql.ErrNoRows) {
			return kiln.Errorf(kiln.ENOTFOUND, "the audit log has no entry %d to checkpoint", cp.Seq)
		}
		if err != nil {
			return fmt.Errorf("read audit entry %d: %w", cp.Seq, err)
		}
		if hash != cp.Hash {
			return kiln.Errorf(kiln.ECONFLICT, "audit entry %d has hash %.12s…, not %.12s… as the checkpoint says", cp.Seq, hash, cp.Hash)
		}
		var n int
		if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM audit_checkpoints WHERE seq = ?`, cp.Seq).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		_, err = tx.exec(ctx, `INSERT INTO audit_checkpoints (seq, head, time, key_id, envelope) VALUES (?, ?, ?, ?, ?)`,
			cp.Seq, cp.Hash, tx.timeArg(cp.Time), cp.KeyID, string(cp.Envelope))
		if err != nil {
			return fmt.Errorf("keep audit checkpoint %d: %w", cp.Seq, err)
		}
		return nil
	})
}

// ListAuditCheckpoints returns every checkpoint, oldest first.
func (db *DB) ListAuditCheckpoints(ctx context.Context) ([]*kiln.AuditCheckpoint, error) {
	var out []*kiln.AuditCheckpoint
	err := db.read(ctx, func(tx *tx) error {
		out = nil
		return eachRow(ctx, tx, `SELECT seq, head, time, key_id, envelope FROM audit_checkpoints ORDER BY seq`, nil, func(rows *sql.Rows) error {
			cp := &kiln.AuditCheckpoint{}
			var env string
			if err := rows.Scan(&cp.Seq, &cp.Hash, dbTime{&cp.Time}, &cp.KeyID, &env); err != nil {
				return fmt.Errorf("read audit checkpoints: %w", err)
			}
			cp.Envelope = []byte(env)
			out = append(out, cp)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// VerifyAuditAgainst walks the chain (see VerifyAudit) and checks each
// anchor: the entry must exist and have the anchor's hash. An entry whose
// hash differs from an anchor while the chain still links was rewritten
// together with everything after it; an anchor beyond the last entry
// means the newest entries were removed.
func (db *DB) VerifyAuditAgainst(ctx context.Context, anchors []kiln.AuditAnchor) (*kiln.AuditCheck, error) {
	want := map[int64][]string{}
	for _, a := range anchors {
		want[a.Seq] = append(want[a.Seq], a.Hash)
	}
	seen := map[int64]bool{}
	c, err := db.verifyAudit(ctx, func(e *kiln.AuditEntry) []string {
		var ps []string
		for _, h := range want[e.Seq] {
			seen[e.Seq] = true
			if h != e.Hash {
				ps = append(ps, fmt.Sprintf("entry %d has hash %.12s…, but an anchor kept outside the database says %.12s…: entries up to %d were changed and the chain re-hashed",
					e.Seq, e.Hash, h, e.Seq))
			}
		}
		return ps
	})
	if err != nil {
		return nil, err
	}
	var missing []int64
	for seq := range want {
		if !seen[seq] {
			missing = append(missing, seq)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	for _, seq := range missing {
		c.Problems = append(c.Problems, fmt.Sprintf("entry %d is missing, but an anchor kept outside the database vouches for it (the log has %d entries): entries were deleted",
			seq, c.Entries))
	}
	return c, nil
}

// AuditWriteRisks says what this connection's database role can do to the
// audit log beyond appending to it: own the table (and so drop its
// triggers), or UPDATE, DELETE or TRUNCATE it. Each such power lets the
// role rewrite the log; only signed checkpoints then reveal it. Nil on
// SQLite, whose file anyone with write access can rewrite anyway.
func (db *DB) AuditWriteRisks(ctx context.Context) ([]string, error) {
	if db.dialect != dialectPostgres {
		return nil, nil
	}
	var risks []string
	err := db.read(ctx, func(tx *tx) error {
		for _, table := range []string{"audit_log", "audit_checkpoints"} {
			var owner, me string
			var upd, del, trunc, trig bool
			err := tx.queryRow(ctx, `SELECT pg_get_userbyid(c.relowner), current_user,
				has_table_privilege(c.oid, 'UPDATE'), has_table_privilege(c.oid, 'DELETE'),
				has_table_privilege(c.oid, 'TRUNCATE'), has_table_privilege(c.oid, 'TRIGGER')
				FROM pg_class c WHERE c.oid = to_regclass(?::text)`, table).Scan(&owner, &me, &upd, &del, &trunc, &trig)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("read the privileges on %s: %w", table, err)
			}
			var can []string
			if owner == me || pgIsMember(ctx, tx, owner) {
				can = append(can, "owns it (and can drop its triggers)")
			}
			for _, p := range []struct {
				ok   bool
				what string
			}{{upd, "UPDATE"}, {del, "DELETE"}, {trunc, "TRUNCATE"}, {trig, "TRIGGER"}} {
				if p.ok {
					can = append(can, p.what)
				}
			}
			if len(can) > 0 {
				risks = append(risks, fmt.Sprintf("role %s can rewrite %s: %s", me, table, joinAnd(can)))
			}
		}
		return nil
	})
	return risks, err
}

// pgIsMember reports whether the current role is a member of role (so it
// acts as the owner); false when it cannot tell.
func pgIsMember(ctx context.Context, tx *tx, role string) bool {
	var ok bool
	if err := tx.queryRow(ctx, `SELECT pg_has_role(current_user, ?::name, 'MEMBER')`, role).Scan(&ok); err != nil {
		return false
	}
	return ok
}

func joinAnd(s []string) string {
	out := ""
	for i, x := range s {
		switch {
		case i == 0:
		case i == len(s)-1:
			out += " and "
		default:
			out += ", "
		}
		out += x
	}
	return out
}
