-- 0011_supply_chain: versions of method external (an image another tool
-- such as Packer built, kept as a record and an external reference), and
-- revocation that follows ancestry, with scheduled revocations.
-- Times are UTC text, "2006-01-02T15:04:05.000000Z".

-- provenance.method may be 'external'. SQLite cannot alter a CHECK
-- constraint, and copying the table into a new one would drop the columns
-- other migrations add to provenance, so the constraint's text is changed
-- in place, as SQLite documents for changing a CHECK constraint
-- (https://sqlite.org/lang_altertable.html#otheralter: the on-disk format
-- does not change). RESET makes this connection parse the schema again;
-- the CREATE INDEX below changes the schema cookie, so every other
-- connection parses it again too. The temporary check table fails the
-- migration when the constraint was not found as 0001 wrote it.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
	SET sql = replace(sql, 'CHECK (method IN (''fresh'', ''reheat''))', 'CHECK (method IN (''fresh'', ''reheat'', ''external''))')
	WHERE type = 'table' AND name = 'provenance';
PRAGMA writable_schema = RESET;
PRAGMA writable_schema = OFF;
CREATE TEMP TABLE kiln_migration_0011_check (ok INTEGER NOT NULL CHECK (ok = 1));
INSERT INTO kiln_migration_0011_check (ok)
	SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'provenance' AND sql LIKE '%''external''))%';
DROP TABLE kiln_migration_0011_check;

-- Descendants are found through both parent and base.
CREATE INDEX provenance_parent ON provenance (parent_version_id);

-- One row per revoked version while it stays revoked (a restore deletes
-- it; the version's history and the audit log keep what happened).
-- through_version_id is the directly revoked ancestor that caused it,
-- NULL for a version revoked itself; previous_status is what a restore
-- returns it to.
CREATE TABLE version_revocations (
	version_id         INTEGER PRIMARY KEY REFERENCES versions (id),
	through_version_id INTEGER REFERENCES versions (id),
	reason             TEXT NOT NULL DEFAULT '',
	actor              TEXT NOT NULL,
	revoked_at         TEXT NOT NULL,
	previous_status    TEXT NOT NULL
);
CREATE INDEX version_revocations_through ON version_revocations (through_version_id);

-- Pending revocations (`kiln version revoke IMAGE-N --at TIME`); applied
-- and deleted by ApplyDueRevocations.
CREATE TABLE revocation_schedule (
	version_id INTEGER PRIMARY KEY REFERENCES versions (id),
	at         TEXT NOT NULL,
	reason     TEXT NOT NULL DEFAULT '',
	actor      TEXT NOT NULL,
	created_at TEXT NOT NULL
);
CREATE INDEX revocation_schedule_at ON revocation_schedule (at);
