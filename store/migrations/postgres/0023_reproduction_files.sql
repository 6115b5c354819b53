-- 0023_reproduction_files: the files a rebuild check found different
-- (JSON array of {path, what, step}, at most kiln.MaxReproductionFiles;
-- '' for checks recorded before) and how many differ in all.
ALTER TABLE version_reproductions ADD COLUMN differing_files BIGINT NOT NULL DEFAULT 0;
ALTER TABLE version_reproductions ADD COLUMN files TEXT NOT NULL DEFAULT '';
