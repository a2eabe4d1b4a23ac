package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/uptrace/bun"
)

// Statements of stable text. Bun writes every value into the SQL text, so
// each run's insert was a statement PostgreSQL had never seen: pgx prepared
// it (a round trip, a parse), then ran it (another round trip, a plan), and
// the text was never used again. Measured under POST /runs load, parsing
// and planning the insert took ≈ 0.7 ms of PostgreSQL's ≈ 1.2 ms per run.
// The statements below keep their values apart ($n), so their text is the
// same for every run: pgx prepares each once per connection and then sends
// only the values. They are used for the API's hot writes only; the rest
// stays with Bun's query builder.

// argsConn is the database/sql handle under a Bun handle: statements sent
// through it keep their arguments apart (Bun's own methods inline them).
type argsConn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// rawConn returns db's database/sql handle, or false for a handle whose
// kind it does not know (the caller then goes through Bun).
func rawConn(db bun.IDB) (argsConn, bool) {
	switch d := db.(type) {
	case *bun.DB:
		return d.DB, true
	case bun.Tx:
		return d.Tx, true
	}
	return nil, false
}

// insertRunSQL writes a new run and its pending rows in one statement.
const insertRunSQL = `WITH run AS (
	INSERT INTO runs (id, user_id, recording_id, recording_name, recording_url, recording_version, status, attempt,
		deliveries, browser, headless, video_enabled, screenshot_enabled, screenshot_mode, timeout, timing_enabled,
		timing_mode, speed_multiplier, continue_on_error, assert_auto_checkpoints, options, variables, retry_of,
		idempotency_key, triggered_by, ci_metadata, actions_total, screenshot_paths, created_at, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7::text::run_status, $8, $9, $10::text::browser_type, $11, $12, $13, $14, $15,
		$16, $17, $18, $19, $20, $21::jsonb, $22::jsonb, $23::uuid, $24::text, $25::text::run_trigger, $26::jsonb, $27,
		$28::jsonb, $29, $29)
	RETURNING id)
INSERT INTO run_actions (run_id, attempt, action_id, action_index, action_type, status, warnings, metadata,
	created_at, updated_at)
SELECT run.id, 0, a.action_id, a.ord - 1, a.action_type, 'pending', '[]', 'null', $29, $29
FROM run, unnest($30::text[], $31::text[]) WITH ORDINALITY AS a (action_id, action_type, ord)`

// insertRunArgs are insertRunSQL's arguments for r and its rows.
func insertRunArgs(r *Run, rows []RunAction) ([]any, error) {
	vars, err := json.Marshal(r.Variables)
	if err != nil {
		return nil, fmt.Errorf("encode variables: %w", err)
	}
	shots, err := json.Marshal(r.ScreenshotPaths)
	if err != nil {
		return nil, fmt.Errorf("encode screenshot paths: %w", err)
	}
	var retryOf, key any
	if r.RetryOf != nil {
		retryOf = r.RetryOf.String()
	}
	if r.IdempotencyKey != nil {
		key = *r.IdempotencyKey
	}
	ci := "null"
	if len(r.CIMetadata) > 0 {
		ci = string(r.CIMetadata)
	}
	ids := make([]string, len(rows))
	types := make([]string, len(rows))
	for i, a := range rows {
		ids[i], types[i] = a.ActionID, a.ActionType
	}
	return []any{
		r.ID.String(), r.UserID.String(), r.RecordingID.String(), r.RecordingName, r.RecordingURL, r.RecordingVersion,
		string(r.Status), r.Attempt, r.Deliveries, r.Browser, r.Headless, r.VideoEnabled, r.ScreenshotEnabled,
		r.ScreenshotMode, r.Timeout, r.TimingEnabled, r.TimingMode, r.SpeedMultiplier, r.ContinueOnError,
		r.AssertAutoCheckpoints, string(r.Options), string(vars), retryOf, key, r.TriggeredBy, ci, r.ActionsTotal,
		string(shots), r.CreatedAt, ids, types,
	}, nil
}

// recordEntrySQL records a run's stream entry, unless one is recorded.
const recordEntrySQL = `UPDATE runs SET queue_name = $1, job_id = $2 WHERE id = $3 AND job_id = ''`
