-- 0003_security: API tokens, dashboard sessions and the audit log.
-- Times are UTC text, "2006-01-02T15:04:05.000000Z".

-- Only the SHA-256 of a token's secret is kept (docs/security.md says why
-- a plain hash is enough for 256-bit random secrets).
CREATE TABLE tokens (
	id          INTEGER PRIMARY KEY,
	name        TEXT NOT NULL UNIQUE,
	role        TEXT NOT NULL CHECK (role IN ('viewer', 'agent', 'builder', 'operator', 'admin')),
	secret_hash TEXT NOT NULL UNIQUE,
	created_at  TEXT NOT NULL,
	created_by  TEXT NOT NULL,
	expires_at  TEXT,
	revoked_at  TEXT
);

CREATE TABLE sessions (
	secret_hash TEXT PRIMARY KEY,
	token_id    INTEGER NOT NULL REFERENCES tokens (id),
	created_at  TEXT NOT NULL,
	expires_at  TEXT NOT NULL
);
CREATE INDEX sessions_token ON sessions (token_id);

-- The audit log is append-only: seq counts 1, 2, 3… and each entry keeps
-- the previous entry's hash, so an edited or deleted row breaks the chain
-- (`kiln audit verify`). The triggers refuse changes through SQL.
CREATE TABLE audit_log (
	seq       INTEGER PRIMARY KEY,
	time      TEXT NOT NULL,
	actor     TEXT NOT NULL,
	action    TEXT NOT NULL,
	target    TEXT NOT NULL,
	detail    TEXT NOT NULL DEFAULT '',
	source    TEXT NOT NULL,
	result    TEXT NOT NULL,
	prev_hash TEXT NOT NULL,
	hash      TEXT NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'kiln immutable: the audit log cannot be changed'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'kiln immutable: the audit log cannot be deleted'); END;
