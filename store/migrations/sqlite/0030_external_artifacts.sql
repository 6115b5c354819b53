-- 0029_external_artifacts: the names an external version's artifact is
-- known by, so that a server kiln did not build (a Packer AMI, which has no
-- /etc/kiln-release) checks in by its artifact id and kiln finds the
-- version. A Packer artifact "packer:amazon-ebs:us-east-1:ami-0abc" is
-- found by the full reference, by the artifact id "us-east-1:ami-0abc" and,
-- for an AMI copied to several regions ("us-east-1:ami-0abc,eu-west-1:…"),
-- by each region's part; any other external reference by itself
-- (kiln.ExternalNames). Written with the version, never
-- changed. The same id may name several versions (qemu's "VM"); a check-in
-- by such an id is refused as ambiguous.
CREATE TABLE external_artifacts (
	artifact   TEXT NOT NULL,
	version_id INTEGER NOT NULL REFERENCES versions (id),
	PRIMARY KEY (artifact, version_id)
);

INSERT INTO external_artifacts (artifact, version_id)
	SELECT artifact_ref, version_id FROM provenance
	WHERE method = 'external' AND artifact_ref IS NOT NULL AND artifact_ref <> '';
INSERT OR IGNORE INTO external_artifacts (artifact, version_id)
	SELECT substr(artifact_ref, 8 + instr(substr(artifact_ref, 8), ':')), version_id FROM provenance
	WHERE method = 'external' AND artifact_ref LIKE 'packer:%:_%';
-- Each region of a multi-region AMI.
WITH RECURSIVE parts (version_id, rest, part) AS (
	SELECT version_id, substr(artifact_ref, 8 + instr(substr(artifact_ref, 8), ':')) || ',', NULL FROM provenance
	WHERE method = 'external' AND artifact_ref LIKE 'packer:%:_%,%'
	UNION ALL
	SELECT version_id, substr(rest, instr(rest, ',') + 1), substr(rest, 1, instr(rest, ',') - 1) FROM parts WHERE rest <> ''
)
INSERT OR IGNORE INTO external_artifacts (artifact, version_id)
	SELECT part, version_id FROM parts WHERE part IS NOT NULL AND part <> '';

CREATE TRIGGER external_artifacts_no_update BEFORE UPDATE ON external_artifacts
BEGIN SELECT RAISE(ABORT, 'kiln immutable: external artifacts cannot be changed'); END;
CREATE TRIGGER external_artifacts_no_delete BEFORE DELETE ON external_artifacts
BEGIN SELECT RAISE(ABORT, 'kiln immutable: external artifacts cannot be deleted'); END;
