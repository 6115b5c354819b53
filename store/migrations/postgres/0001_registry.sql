-- 0001_registry: image lines, versions, their immutable provenance, tags,
-- history and attachments.

CREATE TABLE images (
	id            BIGSERIAL PRIMARY KEY,
	name          TEXT NOT NULL UNIQUE,
	description   TEXT NOT NULL DEFAULT '',
	-- latest_number is the highest version number handed out; CreateVersion
	-- increments it (UPDATE … RETURNING, which locks the row) in the
	-- transaction that records the version.
	latest_number INTEGER NOT NULL DEFAULT 0,
	created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE versions (
	id         BIGSERIAL PRIMARY KEY,
	image_id   BIGINT NOT NULL REFERENCES images (id),
	number     INTEGER NOT NULL CHECK (number >= 1),
	semver     TEXT NOT NULL DEFAULT '',
	status     TEXT NOT NULL CHECK (status IN ('candidate', 'tested', 'ready', 'failed', 'deprecated', 'revoked')),
	created_at TIMESTAMPTZ NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL,
	UNIQUE (image_id, number)
);
CREATE INDEX versions_image_status ON versions (image_id, status, number);

-- provenance, version_sources and version_packages are written once with
-- the version; the triggers below refuse any later change.
CREATE TABLE provenance (
	version_id        BIGINT PRIMARY KEY REFERENCES versions (id),
	method            TEXT NOT NULL CHECK (method IN ('fresh', 'reheat')),
	parent_version_id BIGINT REFERENCES versions (id),
	base_version_id   BIGINT REFERENCES versions (id),
	artifact_ref      TEXT,
	artifact_digest   TEXT,
	artifact_size     BIGINT,
	built_by          TEXT NOT NULL DEFAULT '',
	started_at        TIMESTAMPTZ,
	finished_at       TIMESTAMPTZ
);
CREATE INDEX provenance_base ON provenance (base_version_id);

CREATE TABLE version_sources (
	version_id BIGINT NOT NULL REFERENCES versions (id),
	position   INTEGER NOT NULL,
	kind       TEXT NOT NULL,
	ref        TEXT NOT NULL,
	digest     TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (version_id, position)
);

CREATE TABLE version_packages (
	version_id   BIGINT NOT NULL REFERENCES versions (id),
	name         TEXT NOT NULL,
	version      TEXT NOT NULL,
	architecture TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (version_id, name, architecture)
);
CREATE INDEX version_packages_name ON version_packages (name, version);

-- Free-form tags only; Name, Version and Release_Status are derived from
-- the version row.
CREATE TABLE version_tags (
	version_id BIGINT NOT NULL REFERENCES versions (id),
	key        TEXT NOT NULL,
	value      TEXT NOT NULL,
	PRIMARY KEY (version_id, key)
);
CREATE INDEX version_tags_key_value ON version_tags (key, value);

CREATE TABLE version_history (
	id         BIGSERIAL PRIMARY KEY,
	version_id BIGINT NOT NULL REFERENCES versions (id),
	time       TIMESTAMPTZ NOT NULL,
	actor      TEXT NOT NULL,
	field      TEXT NOT NULL,
	from_value TEXT NOT NULL,
	to_value   TEXT NOT NULL,
	reason     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX version_history_version ON version_history (version_id, id);

CREATE TABLE version_attachments (
	version_id BIGINT NOT NULL REFERENCES versions (id),
	name       TEXT NOT NULL,
	media_type TEXT NOT NULL,
	size       BIGINT NOT NULL,
	data       BYTEA NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (version_id, name)
);

-- Write-once records. SQLSTATE KLIMM and a message starting with
-- "kiln immutable:" let the store map the refusal to kiln.EIMMUTABLE.
CREATE FUNCTION kiln_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'kiln immutable: % cannot be changed (% refused)', TG_ARGV[0], TG_OP
		USING ERRCODE = 'KLIMM';
END
$$;

CREATE TRIGGER provenance_immutable BEFORE UPDATE OR DELETE ON provenance
	FOR EACH ROW EXECUTE FUNCTION kiln_refuse_change('provenance');
CREATE TRIGGER provenance_no_truncate BEFORE TRUNCATE ON provenance
	FOR EACH STATEMENT EXECUTE FUNCTION kiln_refuse_change('provenance');
CREATE TRIGGER version_sources_immutable BEFORE UPDATE OR DELETE ON version_sources
	FOR EACH ROW EXECUTE FUNCTION kiln_refuse_change('sources');
CREATE TRIGGER version_sources_no_truncate BEFORE TRUNCATE ON version_sources
	FOR EACH STATEMENT EXECUTE FUNCTION kiln_refuse_change('sources');
CREATE TRIGGER version_packages_immutable BEFORE UPDATE OR DELETE ON version_packages
	FOR EACH ROW EXECUTE FUNCTION kiln_refuse_change('packages');
CREATE TRIGGER version_packages_no_truncate BEFORE TRUNCATE ON version_packages
	FOR EACH STATEMENT EXECUTE FUNCTION kiln_refuse_change('packages');
CREATE TRIGGER version_history_immutable BEFORE UPDATE OR DELETE ON version_history
	FOR EACH ROW EXECUTE FUNCTION kiln_refuse_change('history');
CREATE TRIGGER version_history_no_truncate BEFORE TRUNCATE ON version_history
	FOR EACH STATEMENT EXECUTE FUNCTION kiln_refuse_change('history');
CREATE TRIGGER version_attachments_immutable BEFORE UPDATE OR DELETE ON version_attachments
	FOR EACH ROW EXECUTE FUNCTION kiln_refuse_change('attachments');
CREATE TRIGGER version_attachments_no_truncate BEFORE TRUNCATE ON version_attachments
	FOR EACH STATEMENT EXECUTE FUNCTION kiln_refuse_change('attachments');
