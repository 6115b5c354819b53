-- 0002_fleet: the instance inventory, per-version instance counts kept by
-- a trigger, advisories and age policies; source packages in manifests.

-- Advisories name source packages (openssl); manifests list binaries
-- (libssl3). Empty when the manifest did not say.
ALTER TABLE version_packages ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE version_packages ADD COLUMN source_version TEXT NOT NULL DEFAULT '';
CREATE INDEX version_packages_source ON version_packages (source);

-- An instance names its version by image and number, not by row id, so an
-- instance of a version the registry does not know (registered with
-- --allow-unknown, or checked in from an image built elsewhere) is kept;
-- unknown records that it was unknown when registered, and reports flag
-- every instance whose version is missing when they run.
CREATE TABLE instances (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL UNIQUE,
	image        TEXT NOT NULL,
	number       INTEGER NOT NULL CHECK (number >= 1),
	environment  TEXT NOT NULL DEFAULT '',
	platform     TEXT NOT NULL DEFAULT '',
	state        TEXT NOT NULL CHECK (state IN ('starting', 'running', 'degraded', 'stopped', 'crashed', 'destroyed', 'lost')),
	address      TEXT NOT NULL DEFAULT '',
	labels       TEXT NOT NULL DEFAULT '{}', -- JSON object
	launched_at  TIMESTAMPTZ NOT NULL,
	last_seen_at TIMESTAMPTZ,
	tainted      BOOLEAN NOT NULL DEFAULT FALSE,
	unknown      BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX instances_version ON instances (image, number, environment);
CREATE INDEX instances_environment ON instances (environment, state);

-- fleet_counts holds the number of instances per image version,
-- environment and state. The trigger below keeps it exact in the
-- transaction that changes an instance, so fleet reports read thousands of
-- rows instead of counting a million instances.
CREATE TABLE fleet_counts (
	image       TEXT NOT NULL,
	number      INTEGER NOT NULL,
	environment TEXT NOT NULL,
	state       TEXT NOT NULL,
	instances   BIGINT NOT NULL,
	PRIMARY KEY (image, number, environment, state)
);

CREATE FUNCTION kiln_count_instances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'UPDATE' AND OLD.image = NEW.image AND OLD.number = NEW.number
		AND OLD.environment = NEW.environment AND OLD.state = NEW.state THEN
		RETURN NULL;
	END IF;
	IF TG_OP IN ('UPDATE', 'DELETE') THEN
		UPDATE fleet_counts SET instances = instances - 1
			WHERE image = OLD.image AND number = OLD.number AND environment = OLD.environment AND state = OLD.state;
	END IF;
	IF TG_OP IN ('UPDATE', 'INSERT') THEN
		INSERT INTO fleet_counts (image, number, environment, state, instances)
			VALUES (NEW.image, NEW.number, NEW.environment, NEW.state, 1)
			ON CONFLICT (image, number, environment, state) DO UPDATE SET instances = fleet_counts.instances + 1;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER instances_count AFTER INSERT OR DELETE OR UPDATE OF image, number, environment, state ON instances
	FOR EACH ROW EXECUTE FUNCTION kiln_count_instances();

-- An advisory is kept whole as JSON (document); fixed-in statements and
-- the source packages it names are also rows, for the queries.
CREATE TABLE advisories (
	id         TEXT PRIMARY KEY,
	source     TEXT NOT NULL,
	summary    TEXT NOT NULL DEFAULT '',
	modified   TIMESTAMPTZ,
	withdrawn  TIMESTAMPTZ,
	document   TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE advisory_fixed_in (
	advisory_id TEXT NOT NULL REFERENCES advisories (id) ON DELETE CASCADE,
	image       TEXT NOT NULL,
	number      INTEGER NOT NULL CHECK (number >= 1),
	PRIMARY KEY (advisory_id, image)
);
CREATE TABLE advisory_packages (
	advisory_id TEXT NOT NULL REFERENCES advisories (id) ON DELETE CASCADE,
	name        TEXT NOT NULL,
	PRIMARY KEY (advisory_id, name)
);
CREATE INDEX advisory_packages_name ON advisory_packages (name);

-- Age limits per environment: no instance there may run a version built
-- longer than max_age_seconds ago.
CREATE TABLE fleet_policies (
	environment     TEXT PRIMARY KEY,
	max_age_seconds BIGINT NOT NULL CHECK (max_age_seconds > 0),
	updated_at      TIMESTAMPTZ NOT NULL,
	updated_by      TEXT NOT NULL DEFAULT ''
);
