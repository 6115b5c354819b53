-- 0015_artifact_layers: a layered artifact's OCI layers, bottom first
-- (docs/building.md). provenance.artifact_digest names the layer list
-- these rows repeat; a version without rows has a single-tar artifact.
-- Written once with the version, like its provenance.
CREATE TABLE artifact_layers (
	version_id BIGINT NOT NULL REFERENCES versions (id),
	position   INTEGER NOT NULL,
	digest     TEXT NOT NULL,
	diff_id    TEXT NOT NULL,
	size       BIGINT NOT NULL,
	media_type TEXT NOT NULL,
	PRIMARY KEY (version_id, position)
);
CREATE INDEX artifact_layers_digest ON artifact_layers (digest);

CREATE TRIGGER artifact_layers_immutable BEFORE UPDATE OR DELETE ON artifact_layers
	FOR EACH ROW EXECUTE FUNCTION kiln_refuse_change('artifact layers');
CREATE TRIGGER artifact_layers_no_truncate BEFORE TRUNCATE ON artifact_layers
	FOR EACH STATEMENT EXECUTE FUNCTION kiln_refuse_change('artifact layers');
