-- 0029_service_pending: the rollout kiln serve's autopilot decided on
-- for a service and holds back for its rollout policy (outside its update
-- window, over its environment's rollout limit), as JSON
-- (kiln.PendingRollout); '' when none waits.
ALTER TABLE services ADD COLUMN pending TEXT NOT NULL DEFAULT '';
