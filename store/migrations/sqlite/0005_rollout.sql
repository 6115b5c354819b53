-- 0005_rollout: services behind a front end, their members, rollouts,
-- front-end reports and break-glass access records.

-- A service is a set of instances of one image line in one environment
-- behind a loopback front end. generation counts changes of the backend
-- set (members entering or leaving active), so the engine can wait for the
-- proxy to have applied a removal before destroying the instance.
CREATE TABLE services (
	name                TEXT PRIMARY KEY,
	image               TEXT NOT NULL,
	environment         TEXT NOT NULL,
	replicas            INTEGER NOT NULL CHECK (replicas >= 1),
	listen              TEXT NOT NULL UNIQUE,
	port                INTEGER NOT NULL,
	health              TEXT NOT NULL,
	max_surge           INTEGER NOT NULL CHECK (max_surge >= 1),
	min_healthy_percent INTEGER NOT NULL CHECK (min_healthy_percent BETWEEN 1 AND 100),
	bake_time_ms        INTEGER NOT NULL,
	max_error_rate      REAL NOT NULL,
	version_image       TEXT NOT NULL DEFAULT '',
	version_number      INTEGER NOT NULL DEFAULT 0,
	generation          INTEGER NOT NULL DEFAULT 0,
	created_at          TEXT NOT NULL,
	updated_at          TEXT NOT NULL
);

-- A member is recorded (launching) before its instance is launched, so an
-- interrupted rollout finds and destroys what it started.
CREATE TABLE service_members (
	service     TEXT NOT NULL REFERENCES services (name),
	instance_id TEXT NOT NULL,
	image       TEXT NOT NULL,
	number      INTEGER NOT NULL,
	address     TEXT NOT NULL DEFAULT '',
	state       TEXT NOT NULL CHECK (state IN ('launching', 'active', 'draining')),
	rollout_id  INTEGER NOT NULL DEFAULT 0,
	updated_at  TEXT NOT NULL,
	PRIMARY KEY (service, instance_id)
);

CREATE TABLE service_proxies (
	service    TEXT PRIMARY KEY REFERENCES services (name) ON DELETE CASCADE,
	generation INTEGER NOT NULL,
	backends   INTEGER NOT NULL,
	requests   INTEGER NOT NULL,
	errors     INTEGER NOT NULL,
	pid        INTEGER NOT NULL,
	seen_at    TEXT NOT NULL
);

-- At most one unfinished rollout per service (the partial unique index).
CREATE TABLE rollouts (
	id          INTEGER PRIMARY KEY,
	service     TEXT NOT NULL REFERENCES services (name),
	from_image  TEXT NOT NULL DEFAULT '',
	from_number INTEGER NOT NULL DEFAULT 0,
	to_image    TEXT NOT NULL,
	to_number   INTEGER NOT NULL,
	state       TEXT NOT NULL CHECK (state IN ('running', 'rolling-back', 'succeeded', 'rolled-back', 'failed')),
	batch       INTEGER NOT NULL DEFAULT 0,
	reason      TEXT NOT NULL DEFAULT '',
	batch_times TEXT NOT NULL DEFAULT '[]', -- JSON array of nanoseconds
	started_by  TEXT NOT NULL,
	started_at  TEXT NOT NULL,
	updated_at  TEXT NOT NULL,
	finished_at TEXT
);
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (service) WHERE state IN ('running', 'rolling-back');

-- Break-glass access: who opened a shell on which instance, when and why.
-- The instance is marked tainted in the same transaction.
CREATE TABLE break_glass (
	id          INTEGER PRIMARY KEY,
	instance_id TEXT NOT NULL,
	actor       TEXT NOT NULL,
	reason      TEXT NOT NULL,
	source      TEXT NOT NULL,
	at          TEXT NOT NULL
);
CREATE INDEX break_glass_instance ON break_glass (instance_id);
