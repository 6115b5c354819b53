-- 0010_provenance_recorded_by: a version registered through the API or
-- `kiln version create` rather than built by kiln names the actor that
-- recorded it; its provenance is that actor's claim, and the signed
-- statement says so. Empty for kiln's own builds (and every older row).
ALTER TABLE provenance ADD COLUMN recorded_by TEXT NOT NULL DEFAULT '';
