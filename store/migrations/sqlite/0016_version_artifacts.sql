-- 0016_version_artifacts: a version's further artifacts, built from its
-- root filesystem artifact (provenance.artifact_*): bootable disk images,
-- one per format (qcow2, raw). Recorded with the version in the same
-- transaction, part of its signed provenance, and immutable like it.
-- Versions without disk images have no rows here.
CREATE TABLE version_artifacts (
	version_id INTEGER NOT NULL REFERENCES versions (id),
	format     TEXT NOT NULL CHECK (format IN ('qcow2', 'raw')),
	ref        TEXT NOT NULL,
	digest     TEXT NOT NULL,
	size       INTEGER NOT NULL,
	PRIMARY KEY (version_id, format)
);
CREATE INDEX version_artifacts_digest ON version_artifacts (digest);
CREATE TRIGGER version_artifacts_no_update BEFORE UPDATE ON version_artifacts
BEGIN SELECT RAISE(ABORT, 'kiln immutable: artifacts cannot be changed'); END;
CREATE TRIGGER version_artifacts_no_delete BEFORE DELETE ON version_artifacts
BEGIN SELECT RAISE(ABORT, 'kiln immutable: artifacts cannot be deleted'); END;
