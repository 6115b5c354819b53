-- 0020_reproducible: the SOURCE_DATE_EPOCH a build ran with and where it
-- came from (part of the signed provenance; 0 and '' for versions built
-- before reproducible bakes), and one row per `kiln version rebuild
-- --check` of a version. Times are UTC text, "2006-01-02T15:04:05.000000Z".
ALTER TABLE provenance ADD COLUMN source_date_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE provenance ADD COLUMN source_date_epoch_from TEXT NOT NULL DEFAULT '';

CREATE TABLE version_reproductions (
	id         INTEGER PRIMARY KEY,
	version_id INTEGER NOT NULL REFERENCES versions (id),
	identical  INTEGER NOT NULL CHECK (identical IN (0, 1)),
	digest     TEXT NOT NULL,
	summary    TEXT NOT NULL DEFAULT '',
	actor      TEXT NOT NULL,
	checked_at TEXT NOT NULL,
	elapsed_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX version_reproductions_version ON version_reproductions (version_id, id);
