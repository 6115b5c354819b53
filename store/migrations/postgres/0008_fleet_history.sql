-- 0008_fleet_history: what the dashboard draws trends and rollout
-- timelines from. Both tables hold observations (counts kept for later),
-- not decisions: they are not audited, rows are replaced and pruned after
-- the retention period (90 days by default), and the audit log's
-- immutability rules do not apply.

-- fleet_history: per UTC day and environment, the fleet's counts as the
-- fleet report computes them. day is 'YYYY-MM-DD'. A day's rows are
-- replaced as a whole each time kiln serve records it.
CREATE TABLE fleet_history (
	day              TEXT NOT NULL,
	environment      TEXT NOT NULL,
	instances        INTEGER NOT NULL,
	on_latest        INTEGER NOT NULL,
	exposed_low      INTEGER NOT NULL,
	exposed_medium   INTEGER NOT NULL,
	exposed_high     INTEGER NOT NULL,
	exposed_critical INTEGER NOT NULL,
	over_age         INTEGER NOT NULL,
	recorded_at      TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (day, environment)
);

-- rollout_samples: a running rollout's state about every second: batch,
-- active members per version (JSON), the front end's counters and the
-- health checks made since the previous sample.
CREATE TABLE rollout_samples (
	id            BIGSERIAL PRIMARY KEY,
	rollout_id    BIGINT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
	at            TIMESTAMPTZ NOT NULL,
	state         TEXT NOT NULL,
	batch         INTEGER NOT NULL,
	versions      TEXT NOT NULL DEFAULT '[]',
	requests      BIGINT NOT NULL DEFAULT 0,
	errors        BIGINT NOT NULL DEFAULT 0,
	front_end_pid INTEGER NOT NULL DEFAULT 0,
	health_passed INTEGER NOT NULL DEFAULT 0,
	health_failed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX rollout_samples_rollout ON rollout_samples (rollout_id, at);
CREATE INDEX rollout_samples_at ON rollout_samples (at);
