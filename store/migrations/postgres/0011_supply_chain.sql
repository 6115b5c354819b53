-- 0011_supply_chain: versions of method external (an image another tool
-- such as Packer built, kept as a record and an external reference), and
-- revocation that follows ancestry, with scheduled revocations.

ALTER TABLE provenance DROP CONSTRAINT provenance_method_check;
ALTER TABLE provenance ADD CONSTRAINT provenance_method_check CHECK (method IN ('fresh', 'reheat', 'external'));

-- Descendants are found through both parent and base.
CREATE INDEX provenance_parent ON provenance (parent_version_id);

-- One row per revoked version while it stays revoked (a restore deletes
-- it; the version's history and the audit log keep what happened).
-- through_version_id is the directly revoked ancestor that caused it,
-- NULL for a version revoked itself; previous_status is what a restore
-- returns it to.
CREATE TABLE version_revocations (
	version_id         BIGINT PRIMARY KEY REFERENCES versions (id),
	through_version_id BIGINT REFERENCES versions (id),
	reason             TEXT NOT NULL DEFAULT '',
	actor              TEXT NOT NULL,
	revoked_at         TIMESTAMPTZ NOT NULL,
	previous_status    TEXT NOT NULL
);
CREATE INDEX version_revocations_through ON version_revocations (through_version_id);

-- Pending revocations (`kiln version revoke IMAGE-N --at TIME`); applied
-- and deleted by ApplyDueRevocations.
CREATE TABLE revocation_schedule (
	version_id BIGINT PRIMARY KEY REFERENCES versions (id),
	at         TIMESTAMPTZ NOT NULL,
	reason     TEXT NOT NULL DEFAULT '',
	actor      TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX revocation_schedule_at ON revocation_schedule (at);
