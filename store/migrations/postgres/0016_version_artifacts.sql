-- 0016_version_artifacts: a version's further artifacts, built from its
-- root filesystem artifact (provenance.artifact_*): bootable disk images,
-- one per format (qcow2, raw). Recorded with the version in the same
-- transaction, part of its signed provenance, and immutable like it.
-- Versions without disk images have no rows here.
CREATE TABLE version_artifacts (
	version_id BIGINT NOT NULL REFERENCES versions (id),
	format     TEXT NOT NULL CHECK (format IN ('qcow2', 'raw')),
	ref        TEXT NOT NULL,
	digest     TEXT NOT NULL,
	size       BIGINT NOT NULL,
	PRIMARY KEY (version_id, format)
);
CREATE INDEX version_artifacts_digest ON version_artifacts (digest);
CREATE TRIGGER version_artifacts_immutable BEFORE UPDATE OR DELETE ON version_artifacts
	FOR EACH ROW EXECUTE FUNCTION kiln_refuse_change('artifacts');
CREATE TRIGGER version_artifacts_no_truncate BEFORE TRUNCATE ON version_artifacts
	FOR EACH STATEMENT EXECUTE FUNCTION kiln_refuse_change('artifacts');
