-- 0020_reproducible: the SOURCE_DATE_EPOCH a build ran with and where it
-- came from (part of the signed provenance; 0 and '' for versions built
-- before reproducible bakes), and one row per `kiln version rebuild
-- --check` of a version.
ALTER TABLE provenance ADD COLUMN source_date_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE provenance ADD COLUMN source_date_epoch_from TEXT NOT NULL DEFAULT '';

CREATE TABLE version_reproductions (
	id         BIGSERIAL PRIMARY KEY,
	version_id BIGINT NOT NULL REFERENCES versions (id),
	identical  BOOLEAN NOT NULL,
	digest     TEXT NOT NULL,
	summary    TEXT NOT NULL DEFAULT '',
	actor      TEXT NOT NULL,
	checked_at TIMESTAMPTZ NOT NULL,
	elapsed_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX version_reproductions_version ON version_reproductions (version_id, id);
