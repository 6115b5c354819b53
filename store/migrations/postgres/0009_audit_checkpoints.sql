-- 0009_audit_checkpoints: signed checkpoints of the audit log. Each row is
-- "entry seq had hash head", signed with the provenance key (which lives
-- outside the database), so a rewritten chain no longer matches them.
-- Append-only, like the log.
CREATE TABLE audit_checkpoints (
	seq      BIGINT PRIMARY KEY,
	head     TEXT NOT NULL,
	time     TIMESTAMPTZ NOT NULL,
	key_id   TEXT NOT NULL,
	envelope TEXT NOT NULL
);

CREATE TRIGGER audit_checkpoints_immutable BEFORE UPDATE OR DELETE ON audit_checkpoints
	FOR EACH ROW EXECUTE FUNCTION kiln_refuse_change('audit checkpoints');
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
	FOR EACH STATEMENT EXECUTE FUNCTION kiln_refuse_change('audit checkpoints');
