-- Artifacts (DESIGN.md rule 9): what a run stored (keys in the artifact
-- store, not paths on a worker's disk), what failed to upload and why, and
-- when retention removed them.
ALTER TABLE runs ADD COLUMN artifacts jsonb NOT NULL DEFAULT '[]';
ALTER TABLE runs ADD COLUMN artifact_warnings jsonb NOT NULL DEFAULT '[]';
ALTER TABLE runs ADD COLUMN artifacts_expired_at timestamptz;

-- Retention pages through finished runs that still hold artifacts.
CREATE INDEX runs_artifacts_retention_idx ON runs (completed_at, id)
    WHERE artifacts_expired_at IS NULL AND artifacts <> '[]'::jsonb;
