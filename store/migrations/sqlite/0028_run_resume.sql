-- 0028_run_resume: automatic resume of interrupted runs. resume_pending
-- is set when a run is interrupted because its worker died, went silent
-- or its kiln serve was stopped (not when a user stopped a foreground
-- `kiln run`), and cleared by the one worker that queues the run again
-- (or by `kiln run retry`); resumes counts the automatic resumes, which
-- stop at the worker's limit.
ALTER TABLE runs ADD COLUMN resume_pending BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE runs ADD COLUMN resumes INTEGER NOT NULL DEFAULT 0;
