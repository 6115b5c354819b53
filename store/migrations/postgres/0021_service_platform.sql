-- 0021_service_platform: the platform a service's instances run on
-- ("local", "vm"); empty is the default, local.
ALTER TABLE services ADD COLUMN platform TEXT NOT NULL DEFAULT '';
