-- 0019_config_rollback: a rollout records the configuration digest of the
-- instances it replaces and of those it launches, and the configurations
-- themselves are kept by digest so that a rollback launches the old one
-- again. body is JSON: file contents and settings, secrets and the agent
-- token by reference only (file path or variable name), never a value.
ALTER TABLE rollouts ADD COLUMN from_config TEXT NOT NULL DEFAULT '';
ALTER TABLE rollouts ADD COLUMN to_config TEXT NOT NULL DEFAULT '';
CREATE TABLE launch_configs (
	digest     TEXT PRIMARY KEY,
	source     TEXT NOT NULL,
	body       TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL
);
