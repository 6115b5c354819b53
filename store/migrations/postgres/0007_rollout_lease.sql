-- 0007_rollout_lease: the process running a rollout holds a lease on it.
-- owner names the process (program, pid, host and a random run id);
-- lease_until is when the lease ends unless renewed. Another process may
-- resume the rollout only when owner is empty or lease_until has passed,
-- so two kiln processes never run one rollout at once.
ALTER TABLE rollouts ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE rollouts ADD COLUMN lease_until TIMESTAMPTZ;
