-- The run lifecycle (LIFECYCLE.md): deliveries counts failed attempts only,
-- and a run replays the recording version it was created with.
ALTER TABLE runs ADD COLUMN deliveries integer NOT NULL DEFAULT 0;
UPDATE runs SET deliveries = GREATEST(attempt - 1, 0) WHERE status IN ('queued', 'running');

ALTER TABLE recordings ADD COLUMN version integer NOT NULL DEFAULT 1;

-- Every version of a recording's data, written with the recording; a run
-- points at the version it was created with.
CREATE TABLE recording_versions (
    recording_id uuid NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    version      integer NOT NULL,
    data         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recording_id, version)
);
INSERT INTO recording_versions (recording_id, version, data, created_at)
SELECT id, version, data, updated_at FROM recordings;

ALTER TABLE runs ADD COLUMN recording_version integer NOT NULL DEFAULT 1;

-- Leases are compared with the database's clock; the reconciler pages
-- through expired leases with this index.
CREATE INDEX runs_running_lease_idx ON runs (lease_expires_at, id) WHERE status = 'running';
CREATE INDEX runs_queued_updated_idx ON runs (updated_at, id) WHERE status = 'queued';
