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
	version_id BIGINT NOT NULL REFERENCES versions (id),
	PRIMARY KEY (artifact, version_id)
);

INSERT INTO external_artifacts (artifact, version_id)
	SELECT artifact_ref, version_id FROM provenance
	WHERE method = 'external' AND artifact_ref IS NOT NULL AND artifact_ref <> '';
INSERT INTO external_artifacts (artifact, version_id)
	SELECT substr(artifact_ref, 8 + strpos(substr(artifact_ref, 8), ':')), version_id FROM provenance
	WHERE method = 'external' AND artifact_ref LIKE 'packer:%:_%'
	ON CONFLICT DO NOTHING;
-- Each region of a multi-region AMI.
INSERT INTO external_artifacts (artifact, version_id)
	SELECT part, version_id FROM (
		SELECT unnest(string_to_array(substr(artifact_ref, 8 + strpos(substr(artifact_ref, 8), ':')), ',')) AS part, version_id FROM provenance
		WHERE method = 'external' AND artifact_ref LIKE 'packer:%:_%,%'
	) p WHERE part <> ''
	ON CONFLICT DO NOTHING;

CREATE TRIGGER external_artifacts_immutable BEFORE UPDATE OR DELETE ON external_artifacts
	FOR EACH ROW EXECUTE FUNCTION kiln_refuse_change('external artifacts');
CREATE TRIGGER external_artifacts_no_truncate BEFORE TRUNCATE ON external_artifacts
	FOR EACH STATEMENT EXECUTE FUNCTION kiln_refuse_change('external artifacts');
