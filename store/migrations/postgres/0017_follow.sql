-- 0017_follow: services follow their environment's channel under a
-- rollout policy. follow is 'channel' (kiln serve rolls the service out
-- when the channel of its image in its environment moves) or 'none';
-- services recorded before this migration were created when nothing
-- followed, so they keep 'none' until someone sets it
-- (`kiln service set NAME --follow channel`). followed_* is the channel
-- version kiln serve last acted on; policy is the window, limit and
-- metric gate as JSON ('{}' for none); metrics_listen is where the front
-- end serves /metrics ('' for nowhere); estate names the registered
-- estate whose service block defines the service.
ALTER TABLE services ADD COLUMN follow TEXT NOT NULL DEFAULT 'none' CHECK (follow IN ('channel', 'none'));
ALTER TABLE services ADD COLUMN followed_image TEXT NOT NULL DEFAULT '';
ALTER TABLE services ADD COLUMN followed_number INTEGER NOT NULL DEFAULT 0;
ALTER TABLE services ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE services ADD COLUMN metrics_listen TEXT NOT NULL DEFAULT '';
ALTER TABLE services ADD COLUMN estate TEXT NOT NULL DEFAULT '';
ALTER TABLE services ADD COLUMN batch_size INTEGER NOT NULL DEFAULT 0 CHECK (batch_size >= 0);
