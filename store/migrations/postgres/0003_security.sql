-- 0003_security: API tokens, dashboard sessions and the audit log.

-- Only the SHA-256 of a token's secret is kept (docs/security.md says why
-- a plain hash is enough for 256-bit random secrets).
CREATE TABLE tokens (
	id          BIGSERIAL PRIMARY KEY,
	name        TEXT NOT NULL UNIQUE,
	role        TEXT NOT NULL CHECK (role IN ('viewer', 'agent', 'builder', 'operator', 'admin')),
	secret_hash TEXT NOT NULL UNIQUE,
	created_at  TIMESTAMPTZ NOT NULL,
	created_by  TEXT NOT NULL,
	expires_at  TIMESTAMPTZ,
	revoked_at  TIMESTAMPTZ
);

CREATE TABLE sessions (
	secret_hash TEXT PRIMARY KEY,
	token_id    BIGINT NOT NULL REFERENCES tokens (id),
	created_at  TIMESTAMPTZ NOT NULL,
	expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_token ON sessions (token_id);

-- The audit log is append-only: seq counts 1, 2, 3… and each entry keeps
-- the previous entry's hash, so an edited or deleted row breaks the chain
-- (`kiln audit verify`). Appends hold a transaction-scoped advisory lock so
-- concurrent writers keep the chain linear. The triggers refuse changes.
CREATE TABLE audit_log (
	seq       BIGINT PRIMARY KEY,
	time      TIMESTAMPTZ NOT NULL,
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

CREATE TRIGGER audit_log_immutable BEFORE UPDATE OR DELETE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION kiln_refuse_change('audit log');
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION kiln_refuse_change('audit log');
