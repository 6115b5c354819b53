package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB keeps the audit log.
var _ kiln.AuditLog = (*DB)(nil)

// auditLockKey is the PostgreSQL advisory lock key ("klna") held from
// reading the chain's head to the end of the appending transaction, so
// concurrent appends from several kiln processes form one line. On SQLite
// the write transaction's file lock does the same.
const auditLockKey = 0x6b6c6e61

// auditHashVersion starts the hashed bytes; a new layout gets a new tag.
const auditHashVersion = "kiln-audit-v1\n"

// AuditHash returns the hex SHA-256 of an entry's canonical bytes: the
// line "kiln-audit-v1", then for each of seq (decimal), time (UTC,
// 2006-01-02T15:04:05.000000Z), actor, action, target, detail, source,
// result and prev_hash, its length in bytes (decimal), ":", the value and
// "\n". Length prefixes keep two different entries from hashing the same
// bytes whatever their fields contain.
func AuditHash(e *kiln.AuditEntry) string {
	h := sha256.New()
	h.Write([]byte(auditHashVersion))
	for _, f := range []string{
		strconv.FormatInt(e.Seq, 10),
		e.Time.UTC().Format(sqliteTimeLayout),
		e.Actor, e.Action, e.Target, e.Detail, e.Source, e.Result, e.PrevHash,
	} {
		h.Write([]byte(strconv.Itoa(len(f))))
		h.Write([]byte{':'})
		h.Write([]byte(f))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// audit appends an entry for a change made in tx: the actor and source come
// from ctx, the result is ok (a failed change rolls back with its entry).
// Call it last in the transaction, so the chain's lock is held briefly.
func audit(ctx context.Context, tx *tx, action, target, detail string) error {
	return appendAudit(ctx, tx, &kiln.AuditEntry{
		Actor: kiln.ActorFrom(ctx), Action: action, Target: target, Detail: detail,
		Source: kiln.SourceFrom(ctx), Result: kiln.AuditOK,
	})
}

// maxAuditField bounds each text field of an entry, so a hostile request
// path cannot bloat the log.
const maxAuditField = 1024

func appendAudit(ctx context.Context, tx *tx, e *kiln.AuditEntry) error {
	if tx.db.dialect == dialectPostgres {
		if _, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock(?)`, auditLockKey); err != nil {
			return fmt.Errorf("lock the audit log: %w", err)
		}
	}
	var prevSeq int64
	var prevHash string
	err := tx.queryRow(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&prevSeq, &prevHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read the audit log's head: %w", err)
	}
	for _, f := range []*string{&e.Actor, &e.Action, &e.Target, &e.Detail, &e.Source, &e.Result} {
		if len(*f) > maxAuditField {
			*f = (*f)[:maxAuditField]
		}
		*f = strings.ToValidUTF8(*f, "?")
	}
	e.Seq, e.Time, e.PrevHash = prevSeq+1, tx.now, prevHash
	e.Hash = AuditHash(e)
	if _, err := tx.exec(ctx, `INSERT INTO audit_log (seq, time, actor, action, target, detail, source, result, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, tx.timeArg(e.Time), e.Actor, e.Action, e.Target, e.Detail, e.Source, e.Result, e.PrevHash, e.Hash); err != nil {
		return fmt.Errorf("append to the audit log (%s %s): %w", e.Action, e.Target, err)
	}
	return nil
}

// AppendAudit records an event that changes nothing else, such as a
// request refused for lack of credentials, in a transaction of its own.
// Empty Actor, Source and Result default to the context's actor and source
// and "ok". It sets e's Seq, Time and hashes.
func (db *DB) AppendAudit(ctx context.Context, e *kiln.AuditEntry) error {
	if e.Action == "" {
		return kiln.FieldErrorf(kiln.EINVALID, "action", "an audit entry needs an action")
	}
	if e.Actor == "" {
		e.Actor = kiln.ActorFrom(ctx)
	}
	if e.Source == "" {
		e.Source = kiln.SourceFrom(ctx)
	}
	if e.Result == "" {
		e.Result = kiln.AuditOK
	}
	return db.write(ctx, func(tx *tx) error {
		cp := *e
		if err := appendAudit(ctx, tx, &cp); err != nil {
			return err
		}
		*e = cp
		return nil
	})
}

const auditColumns = `seq, time, actor, action, target, detail, source, result, prev_hash, hash`

func scanAudit(rows *sql.Rows) (*kiln.AuditEntry, error) {
	e := &kiln.AuditEntry{}
	err := rows.Scan(&e.Seq, dbTime{&e.Time}, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.Source, &e.Result, &e.PrevHash, &e.Hash)
	return e, err
}

// ListAudit returns matching entries oldest first; with a Limit, the newest
// Limit of them.
func (db *DB) ListAudit(ctx context.Context, f kiln.AuditFilter) ([]*kiln.AuditEntry, error) {
	if f.Limit < 0 {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "limit", "limit must not be negative")
	}
	var conds []string
	var args []any
	if !f.Since.IsZero() {
		conds = append(conds, "time >= ?")
		args = append(args, db.timeArg(f.Since))
	}
	if f.Actor != "" {
		conds = append(conds, "actor = ?")
		args = append(args, f.Actor)
	}
	if f.Target != "" {
		conds = append(conds, "target = ?")
		args = append(args, f.Target)
	}
	q := `SELECT ` + auditColumns + ` FROM audit_log`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ")
	}
	q += ` ORDER BY seq DESC`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	var es []*kiln.AuditEntry
	err := db.read(ctx, func(tx *tx) error {
		es = nil
		return eachRow(ctx, tx, q, args, func(rows *sql.Rows) error {
			e, err := scanAudit(rows)
			if err != nil {
				return fmt.Errorf("list audit log: %w", err)
			}
			es = append(es, e)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(es)
	if es == nil {
		es = []*kiln.AuditEntry{}
	}
	return es, nil
}

// VerifyAudit walks the whole chain and reports every entry whose hash does
// not match its content (edited), whose predecessor is missing (deleted) or
// whose link to it is wrong. Deleting the newest entries leaves an intact
// shorter chain: compare Head and Entries with a copy kept elsewhere.
func (db *DB) VerifyAudit(ctx context.Context) (*kiln.AuditCheck, error) {
	return db.verifyAudit(ctx, nil)
}

// verifyAudit walks the chain; extra, when set, adds problems per entry.
func (db *DB) verifyAudit(ctx context.Context, extra func(*kiln.AuditEntry) []string) (*kiln.AuditCheck, error) {
	var c *kiln.AuditCheck
	err := db.read(ctx, func(tx *tx) error {
		c = &kiln.AuditCheck{}
		var prev *kiln.AuditEntry
		return eachRow(ctx, tx, `SELECT `+auditColumns+` FROM audit_log ORDER BY seq`, nil, func(rows *sql.Rows) error {
			e, err := scanAudit(rows)
			if err != nil {
				return fmt.Errorf("read audit log: %w", err)
			}
			c.Entries++
			c.Problems = append(c.Problems, checkLink(prev, e)...)
			if extra != nil {
				c.Problems = append(c.Problems, extra(e)...)
			}
			c.Head, prev = e.Hash, e
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func checkLink(prev, e *kiln.AuditEntry) []string {
	var ps []string
	wantSeq, wantPrev := int64(1), ""
	if prev != nil {
		wantSeq, wantPrev = prev.Seq+1, prev.Hash
	}
	switch {
	case e.Seq > wantSeq && wantSeq == e.Seq-1:
		ps = append(ps, fmt.Sprintf("entry %d is missing (deleted): entry %d follows entry %d", wantSeq, e.Seq, wantSeq-1))
	case e.Seq > wantSeq:
		ps = append(ps, fmt.Sprintf("entries %d to %d are missing (deleted): entry %d follows entry %d", wantSeq, e.Seq-1, e.Seq, wantSeq-1))
	case e.Seq != wantSeq:
		ps = append(ps, fmt.Sprintf("entry %d is out of sequence: expected %d", e.Seq, wantSeq))
	}
	if e.PrevHash != wantPrev && e.Seq == wantSeq {
		ps = append(ps, fmt.Sprintf("entry %d does not link to entry %d (prev_hash %.12s…, entry %d's hash %.12s…): an entry was changed or replaced",
			e.Seq, wantSeq-1, e.PrevHash, wantSeq-1, wantPrev))
	}
	if AuditHash(e) != e.Hash {
		ps = append(ps, fmt.Sprintf("entry %d (%s %s by %s at %s) does not match its hash: it was edited after it was written",
			e.Seq, e.Action, e.Target, e.Actor, e.Time.Format(time.RFC3339)))
	}
	return ps
}

// auditChange describes a change of value with its reason: "tested → ready: smoke passed".
func auditChange(from, to, reason string) string {
	s := from + " → " + to
	if reason != "" {
		s += ": " + reason
	}
	return s
}

// tagAuditDetail lists the tag keys an update sets and removes; values
// are in the version's history.
func tagAuditDetail(upd kiln.TagUpdate) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(upd.Set)) {
		parts = append(parts, "set "+k)
	}
	for _, k := range upd.Remove {
		parts = append(parts, "remove "+k)
	}
	s := strings.Join(parts, ", ")
	if upd.Reason != "" {
		s += ": " + upd.Reason
	}
	return s
}
