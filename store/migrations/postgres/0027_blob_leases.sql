-- 0027_blob_leases: content a build is about to reference, kept from
-- `kiln artifact gc` on every machine sharing this database. A build
-- leases its content's digests (holder names the build: program, pid, host
-- and a random run id) before it checks or uploads them in the registry,
-- and releases them once its version is recorded; a lease ends by itself
-- at lease_until (a killed build leaves none forever).
CREATE TABLE blob_leases (
    holder      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (holder, digest)
);
CREATE INDEX blob_leases_until ON blob_leases (lease_until);

-- The gc mark: one row, held (holder, lease_until) by the gc deleting
-- blobs. Writing a lease and taking the mark both write or lock this row,
-- so they never interleave: a lease written first is seen by the gc, and a
-- lease written under a held mark tells its build to check its content
-- again after that gc (docs/registry.md). generation counts gcs begun.
CREATE TABLE blob_gc (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  BIGINT NOT NULL DEFAULT 0,
    holder      TEXT NOT NULL DEFAULT '',
    started_at  TIMESTAMPTZ,
    lease_until TIMESTAMPTZ
);
INSERT INTO blob_gc (id) VALUES (1);
