DROP INDEX IF EXISTS runs_queued_updated_idx;
DROP INDEX IF EXISTS runs_running_lease_idx;
ALTER TABLE runs DROP COLUMN IF EXISTS recording_version;
DROP TABLE IF EXISTS recording_versions;
ALTER TABLE recordings DROP COLUMN IF EXISTS version;
ALTER TABLE runs DROP COLUMN IF EXISTS deliveries;
