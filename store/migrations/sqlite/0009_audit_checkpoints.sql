-- 0009_audit_checkpoints: signed checkpoints of the audit log. Each row is
-- "entry seq had hash head", signed with the provenance key (which lives
-- outside the database), so a rewritten chain no longer matches them.
-- Append-only, like the log.
CREATE TABLE audit_checkpoints (
	seq      INTEGER PRIMARY KEY,
	head     TEXT NOT NULL,
	time     TEXT NOT NULL,
	key_id   TEXT NOT NULL,
	envelope TEXT NOT NULL
);

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'kiln immutable: audit checkpoints cannot be changed'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'kiln immutable: audit checkpoints cannot be deleted'); END;
