-- 0014_config: each instance records the launch-time configuration it was
-- given: config_digest ("sha256:…", over names and content hashes, never
-- the content) and config_source (which estate environment or directory
-- produced it). Both are empty for instances given none.
ALTER TABLE instances ADD COLUMN config_digest TEXT NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN config_source TEXT NOT NULL DEFAULT '';
