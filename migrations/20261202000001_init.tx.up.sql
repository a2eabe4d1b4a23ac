-- Initial schema: users, their API tokens, recordings, runs and per-action results.

CREATE TYPE run_status AS ENUM ('queued', 'running', 'passed', 'failed', 'cancelled');
CREATE TYPE action_status AS ENUM ('pending', 'success', 'failed', 'timeout', 'skipped');
CREATE TYPE browser_type AS ENUM ('chromium', 'firefox', 'webkit');
CREATE TYPE run_trigger AS ENUM ('manual', 'api', 'schedule', 'ci');

CREATE TABLE users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email       text NOT NULL,
    name        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE deleted_at IS NULL;

CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL,
    token_hash    text NOT NULL,
    token_prefix  text NOT NULL,
    token_suffix  text NOT NULL,
    scopes        text[] NOT NULL DEFAULT '{}',
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX api_tokens_hash_key ON api_tokens (token_hash);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, created_at DESC);

CREATE TABLE recordings (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    original_id            text NOT NULL,
    name                   text NOT NULL,
    description            text NOT NULL DEFAULT '',
    url                    text NOT NULL,
    tags                   text[] NOT NULL DEFAULT '{}',
    data                   jsonb NOT NULL,
    action_count           integer NOT NULL DEFAULT 0,
    estimated_duration_ms  bigint NOT NULL DEFAULT 0,
    schema_version         text NOT NULL DEFAULT '',
    data_size_bytes        integer NOT NULL DEFAULT 0,
    variables              text[] NOT NULL DEFAULT '{}',
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    deleted_at             timestamptz
);
CREATE UNIQUE INDEX recordings_user_original_key ON recordings (user_id, original_id) WHERE deleted_at IS NULL;
CREATE INDEX recordings_user_created_idx ON recordings (user_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX recordings_tags_idx ON recordings USING gin (tags) WHERE deleted_at IS NULL;

CREATE TABLE runs (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recording_id             uuid NOT NULL REFERENCES recordings (id),
    recording_name           text NOT NULL,
    recording_url            text NOT NULL,
    status                   run_status NOT NULL DEFAULT 'queued',
    -- attempt is 0 while queued for the first time and goes up by one each time a
    -- worker starts the run; every status change compares it (DESIGN.md rule 1).
    attempt                  integer NOT NULL DEFAULT 0,
    browser                  browser_type NOT NULL DEFAULT 'chromium',
    headless                 boolean NOT NULL DEFAULT true,
    video_enabled            boolean NOT NULL DEFAULT false,
    screenshot_enabled       boolean NOT NULL DEFAULT false,
    screenshot_mode          text NOT NULL DEFAULT 'on-failure',
    timeout                  integer NOT NULL DEFAULT 30000,
    timing_enabled           boolean NOT NULL DEFAULT true,
    timing_mode              text NOT NULL DEFAULT 'realistic',
    speed_multiplier         double precision NOT NULL DEFAULT 1,
    continue_on_error        boolean NOT NULL DEFAULT false,
    assert_auto_checkpoints  boolean NOT NULL DEFAULT false,
    options                  jsonb NOT NULL DEFAULT '{}',
    -- variable values are secrets: written here for the worker, never returned by the API.
    variables                jsonb NOT NULL DEFAULT '{}',
    queue_name               text NOT NULL DEFAULT '',
    job_id                   text NOT NULL DEFAULT '',
    worker_node              text NOT NULL DEFAULT '',
    actor_address            text NOT NULL DEFAULT '',
    actor_id                 text NOT NULL DEFAULT '',
    lease_expires_at         timestamptz,
    cancel_requested_at      timestamptz,
    retry_of                 uuid REFERENCES runs (id),
    idempotency_key          text,
    triggered_by             run_trigger NOT NULL DEFAULT 'api',
    ci_metadata              jsonb,
    actions_total            integer NOT NULL DEFAULT 0,
    actions_executed         integer NOT NULL DEFAULT 0,
    actions_failed           integer NOT NULL DEFAULT 0,
    actions_skipped          integer NOT NULL DEFAULT 0,
    duration_ms              integer,
    started_at               timestamptz,
    completed_at             timestamptz,
    error_message            text,
    error_action_id          text,
    video_path               text,
    screenshot_paths         jsonb NOT NULL DEFAULT '[]',
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    deleted_at               timestamptz
);
CREATE INDEX runs_user_created_idx ON runs (user_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX runs_user_status_created_idx ON runs (user_id, status, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX runs_recording_idx ON runs (recording_id, created_at DESC) WHERE deleted_at IS NULL;
CREATE INDEX runs_active_idx ON runs (status, updated_at) WHERE status IN ('queued', 'running');
CREATE UNIQUE INDEX runs_idempotency_key ON runs (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE run_actions (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    run_id           uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    attempt          integer NOT NULL DEFAULT 0,
    action_id        text NOT NULL,
    action_index     integer NOT NULL,
    action_type      text NOT NULL,
    status           action_status NOT NULL DEFAULT 'pending',
    started_at       timestamptz,
    completed_at     timestamptz,
    duration_ms      integer,
    selector_used    text,
    error_message    text,
    reason           text,
    warnings         jsonb NOT NULL DEFAULT '[]',
    screenshot_path  text,
    metadata         jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- One row per action of a run, rewritten by each attempt: a retried run never has duplicates.
CREATE UNIQUE INDEX run_actions_run_index_key ON run_actions (run_id, action_index);
