-- 0001_registry: image lines, versions, their immutable provenance, tags,
-- history and attachments. Times are UTC text, "2006-01-02T15:04:05.000000Z".

CREATE TABLE images (
	id            INTEGER PRIMARY KEY,
	name          TEXT NOT NULL UNIQUE,
	description   TEXT NOT NULL DEFAULT '',
	-- latest_number is the highest version number handed out; CreateVersion
	-- increments it in the transaction that records the version.
	latest_number INTEGER NOT NULL DEFAULT 0,
	created_at    TEXT NOT NULL
);

CREATE TABLE versions (
	id         INTEGER PRIMARY KEY,
	image_id   INTEGER NOT NULL REFERENCES images (id),
	number     INTEGER NOT NULL CHECK (number >= 1),
	semver     TEXT NOT NULL DEFAULT '',
	status     TEXT NOT NULL CHECK (status IN ('candidate', 'tested', 'ready', 'failed', 'deprecated', 'revoked')),
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	UNIQUE (image_id, number)
);
CREATE INDEX versions_image_status ON versions (image_id, status, number);

-- provenance, version_sources and version_packages are written once with
-- the version; the triggers below refuse any later change.
CREATE TABLE provenance (
	version_id        INTEGER PRIMARY KEY REFERENCES versions (id),
	method            TEXT NOT NULL CHECK (method IN ('fresh', 'reheat')),
	parent_version_id INTEGER REFERENCES versions (id),
	base_version_id   INTEGER REFERENCES versions (id),
	artifact_ref      TEXT,
	artifact_digest   TEXT,
	artifact_size     INTEGER,
	built_by          TEXT NOT NULL DEFAULT '',
	started_at        TEXT,
	finished_at       TEXT
);
CREATE INDEX provenance_base ON provenance (base_version_id);

CREATE TABLE version_sources (
	version_id INTEGER NOT NULL REFERENCES versions (id),
	position   INTEGER NOT NULL,
	kind       TEXT NOT NULL,
	ref        TEXT NOT NULL,
	digest     TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (version_id, position)
);

CREATE TABLE version_packages (
	version_id   INTEGER NOT NULL REFERENCES versions (id),
	name         TEXT NOT NULL,
	version      TEXT NOT NULL,
	architecture TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (version_id, name, architecture)
);
CREATE INDEX version_packages_name ON version_packages (name, version);

-- Free-form tags only; Name, Version and Release_Status are derived from
-- the version row.
CREATE TABLE version_tags (
	version_id INTEGER NOT NULL REFERENCES versions (id),
	key        TEXT NOT NULL,
	value      TEXT NOT NULL,
	PRIMARY KEY (version_id, key)
);
CREATE INDEX version_tags_key_value ON version_tags (key, value);

CREATE TABLE version_history (
	id         INTEGER PRIMARY KEY,
	version_id INTEGER NOT NULL REFERENCES versions (id),
	time       TEXT NOT NULL,
	actor      TEXT NOT NULL,
	field      TEXT NOT NULL,
	from_value TEXT NOT NULL,
	to_value   TEXT NOT NULL,
	reason     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX version_history_version ON version_history (version_id, id);

CREATE TABLE version_attachments (
	version_id INTEGER NOT NULL REFERENCES versions (id),
	name       TEXT NOT NULL,
	media_type TEXT NOT NULL,
	size       INTEGER NOT NULL,
	data       BLOB NOT NULL,
	created_at TEXT NOT NULL,
	PRIMARY KEY (version_id, name)
);

-- Write-once records. The message starts with "kiln immutable:" so the store
-- can map it to kiln.EIMMUTABLE.
CREATE TRIGGER provenance_no_update BEFORE UPDATE ON provenance
BEGIN SELECT RAISE(ABORT, 'kiln immutable: provenance cannot be changed'); END;
CREATE TRIGGER provenance_no_delete BEFORE DELETE ON provenance
BEGIN SELECT RAISE(ABORT, 'kiln immutable: provenance cannot be deleted'); END;
CREATE TRIGGER version_sources_no_update BEFORE UPDATE ON version_sources
BEGIN SELECT RAISE(ABORT, 'kiln immutable: sources cannot be changed'); END;
CREATE TRIGGER version_sources_no_delete BEFORE DELETE ON version_sources
BEGIN SELECT RAISE(ABORT, 'kiln immutable: sources cannot be deleted'); END;
CREATE TRIGGER version_packages_no_update BEFORE UPDATE ON version_packages
BEGIN SELECT RAISE(ABORT, 'kiln immutable: packages cannot be changed'); END;
CREATE TRIGGER version_packages_no_delete BEFORE DELETE ON version_packages
BEGIN SELECT RAISE(ABORT, 'kiln immutable: packages cannot be deleted'); END;
CREATE TRIGGER version_history_no_update BEFORE UPDATE ON version_history
BEGIN SELECT RAISE(ABORT, 'kiln immutable: history cannot be changed'); END;
CREATE TRIGGER version_history_no_delete BEFORE DELETE ON version_history
BEGIN SELECT RAISE(ABORT, 'kiln immutable: history cannot be deleted'); END;
CREATE TRIGGER version_attachments_no_update BEFORE UPDATE ON version_attachments
BEGIN SELECT RAISE(ABORT, 'kiln immutable: attachments cannot be changed'); END;
CREATE TRIGGER version_attachments_no_delete BEFORE DELETE ON version_attachments
BEGIN SELECT RAISE(ABORT, 'kiln immutable: attachments cannot be deleted'); END;
