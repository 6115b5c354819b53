-- 0015_artifact_layers: a layered artifact's OCI layers, bottom first
-- (docs/building.md). provenance.artifact_digest names the layer list
-- these rows repeat; a version without rows has a single-tar artifact.
-- Written once with the version, like its provenance.
CREATE TABLE artifact_layers (
	version_id INTEGER NOT NULL REFERENCES versions (id),
	position   INTEGER NOT NULL,
	digest     TEXT NOT NULL,
	diff_id    TEXT NOT NULL,
	size       INTEGER NOT NULL,
	media_type TEXT NOT NULL,
	PRIMARY KEY (version_id, position)
);
CREATE INDEX artifact_layers_digest ON artifact_layers (digest);

CREATE TRIGGER artifact_layers_no_update BEFORE UPDATE ON artifact_layers
BEGIN SELECT RAISE(ABORT, 'kiln immutable: artifact layers cannot be changed'); END;
CREATE TRIGGER artifact_layers_no_delete BEFORE DELETE ON artifact_layers
BEGIN SELECT RAISE(ABORT, 'kiln immutable: artifact layers cannot be deleted'); END;
