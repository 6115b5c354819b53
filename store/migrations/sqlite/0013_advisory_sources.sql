-- 0013_advisory_sources: advisory sources kiln serve keeps current. feed on
-- an advisory names the source that brought it ('' for advisories
-- imported or added by hand), so a sync replaces exactly its own.
CREATE TABLE advisory_sources (
	name           TEXT PRIMARY KEY,
	kind           TEXT NOT NULL,
	url            TEXT NOT NULL,
	every_seconds  INTEGER NOT NULL CHECK (every_seconds >= 60),
	etag           TEXT NOT NULL DEFAULT '',
	last_modified  TEXT NOT NULL DEFAULT '',
	last_attempt   TEXT,
	last_success   TEXT,
	last_error     TEXT NOT NULL DEFAULT '',
	advisories     INTEGER NOT NULL DEFAULT 0,
	created_at     TEXT NOT NULL,
	created_by     TEXT NOT NULL DEFAULT ''
);
ALTER TABLE advisories ADD COLUMN feed TEXT NOT NULL DEFAULT '';
CREATE INDEX advisories_feed ON advisories (feed);
