DROP INDEX IF EXISTS runs_artifacts_retention_idx;
ALTER TABLE runs DROP COLUMN IF EXISTS artifacts_expired_at;
ALTER TABLE runs DROP COLUMN IF EXISTS artifact_warnings;
ALTER TABLE runs DROP COLUMN IF EXISTS artifacts;
