-- 0004_pipeline: pipeline runs (the job queue), their logs, channels and
-- promotions, webhooks and their delivery log, and schedule firings.
-- Times are TIMESTAMPTZ.

-- A run is a job: workers claim queued runs with SELECT … FOR UPDATE SKIP
-- LOCKED. The partial unique indexes keep at most one queued and one
-- running run per image: a further trigger coalesces into the queued run.
CREATE TABLE runs (
	id             BIGSERIAL PRIMARY KEY,
	image          TEXT NOT NULL,
	estate         TEXT NOT NULL,
	vars           TEXT NOT NULL DEFAULT '{}',   -- JSON object
	trigger_reason TEXT NOT NULL,
	status         TEXT NOT NULL CHECK (status IN ('queued', 'running', 'waiting', 'succeeded', 'failed', 'interrupted', 'cancelled')),
	stages         TEXT NOT NULL,                -- JSON array of stages
	version_number INTEGER,
	after_run_id   BIGINT REFERENCES runs (id),
	force_build    BOOLEAN NOT NULL DEFAULT FALSE,
	worker         TEXT NOT NULL DEFAULT '',
	reason         TEXT NOT NULL DEFAULT '',
	created_at     TIMESTAMPTZ NOT NULL,
	started_at     TIMESTAMPTZ,
	finished_at    TIMESTAMPTZ,
	heartbeat_at   TIMESTAMPTZ
);
CREATE UNIQUE INDEX runs_one_queued ON runs (image) WHERE status = 'queued';
CREATE UNIQUE INDEX runs_one_running ON runs (image) WHERE status = 'running';
CREATE INDEX runs_status ON runs (status, id);
CREATE INDEX runs_image ON runs (image, id);

CREATE TABLE run_logs (
	id     BIGSERIAL PRIMARY KEY,
	run_id BIGINT NOT NULL REFERENCES runs (id),
	stage  TEXT NOT NULL DEFAULT '',
	time   TIMESTAMPTZ NOT NULL,
	text   TEXT NOT NULL
);
CREATE INDEX run_logs_run ON run_logs (run_id, id);

CREATE TABLE channels (
	image       TEXT NOT NULL,
	environment TEXT NOT NULL,
	number      INTEGER NOT NULL CHECK (number >= 1),
	updated_at  TIMESTAMPTZ NOT NULL,
	updated_by  TEXT NOT NULL,
	PRIMARY KEY (image, environment)
);

CREATE TABLE promotions (
	id          BIGSERIAL PRIMARY KEY,
	image       TEXT NOT NULL,
	environment TEXT NOT NULL,
	kind        TEXT NOT NULL CHECK (kind IN ('promote', 'rollback')),
	number      INTEGER NOT NULL,
	previous    INTEGER NOT NULL DEFAULT 0,
	actor       TEXT NOT NULL,
	reason      TEXT NOT NULL DEFAULT '',
	time        TIMESTAMPTZ NOT NULL
);
CREATE INDEX promotions_channel ON promotions (image, environment, id);

-- The secret is kept in clear: signing needs it. It is never shown.
CREATE TABLE webhooks (
	id         BIGSERIAL PRIMARY KEY,
	url        TEXT NOT NULL,
	secret     TEXT NOT NULL,
	events     TEXT NOT NULL, -- comma-separated
	created_at TIMESTAMPTZ NOT NULL,
	created_by TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
	id              BIGSERIAL PRIMARY KEY,
	webhook_id      BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
	event           TEXT NOT NULL,
	payload         TEXT NOT NULL,
	status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at TIMESTAMPTZ,
	last_error      TEXT NOT NULL DEFAULT '',
	response_status INTEGER NOT NULL DEFAULT 0,
	created_at      TIMESTAMPTZ NOT NULL,
	delivered_at    TIMESTAMPTZ
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);

-- One row per scheduled pipeline: the last time its schedule fired. A
-- firing is taken by compare-and-set on fired_at, so two servers never
-- both fire it.
CREATE TABLE schedules (
	estate   TEXT NOT NULL,
	image    TEXT NOT NULL,
	cron     TEXT NOT NULL,
	fired_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (estate, image)
);
