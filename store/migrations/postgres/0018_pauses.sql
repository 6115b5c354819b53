-- 0018_pauses: services and environments the autopilot leaves alone
-- (kiln service pause, kiln env pause): who paused, when and why.
CREATE TABLE pauses (
	kind    TEXT NOT NULL CHECK (kind IN ('service', 'environment')),
	name    TEXT NOT NULL,
	actor   TEXT NOT NULL DEFAULT '',
	reason  TEXT NOT NULL,
	at      TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (kind, name)
);
