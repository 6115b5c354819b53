-- 0012_seca: estates an admin registered (`kiln estate add`): API runs
-- start only from these; the token that asked for a run, whose actor the
-- worker acts as; the agent token an instance is bound to (the first that
-- checked it in) and whether kiln launched it (agents may not check those
-- in).
CREATE TABLE estates (
	name       TEXT PRIMARY KEY,
	dir        TEXT NOT NULL UNIQUE,
	created_at TEXT NOT NULL,
	created_by TEXT NOT NULL DEFAULT ''
);
ALTER TABLE runs ADD COLUMN requested_by TEXT NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN agent_token TEXT NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN launched_by_kiln INTEGER NOT NULL DEFAULT 0;
