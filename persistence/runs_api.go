package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// IdempotencyWindow is how long an Idempotency-Key keeps returning the run it
// first created. After it, the key may create a new run.
const IdempotencyWindow = 24 * time.Hour

// EnqueueError wraps a failure to put a run on the dispatch stream. The run
// was not created.
type EnqueueError struct{ Err error }

func (e *EnqueueError) Error() string { return "enqueue run: " + e.Err.Error() }

// Unwrap returns the dispatcher's error.
func (e *EnqueueError) Unwrap() error { return e.Err }

// EnqueueFunc puts runID on the dispatch stream and says where: the stream
// (queue) name and the entry id.
type EnqueueFunc func(ctx context.Context, runID uuid.UUID) (queueName, entryID string, err error)

// NewRun is what CreateRun needs to create a run.
type NewRun struct {
	// Run is the row to insert: user, recording and its snapshot, options
	// (columns and the resolved `options` document), variables, trigger, CI
	// metadata, idempotency key, retry source. Id, status, counters, job
	// and timestamps are set by CreateRun.
	Run *Run
	// Actions are the recording's actions in replay order; each gets a
	// pending run_actions row at its index.
	Actions []ActionRef
	// Enqueue is called after the run and its rows are written: when it
	// fails the run is removed again.
	Enqueue EnqueueFunc
	// Now stamps the rows.
	Now time.Time
}

// CreateRun writes a queued run and a pending row per action and queues it,
// all or nothing. When the run carries an idempotency key that the same user
// used within IdempotencyWindow, nothing is created and the earlier run is
// returned with replayed true. A failure of Enqueue is an *EnqueueError.
func CreateRun(ctx context.Context, db bun.IDB, in NewRun) (run *Run, replayed bool, err error) {
	r := in.Run
	// As PostgreSQL keeps it (microseconds), so the run returned is the one
	// a later read returns.
	now := in.Now.UTC().Truncate(time.Microsecond)
	if r.IdempotencyKey != nil {
		prev, err := runByIdempotencyKey(ctx, db, r.UserID, *r.IdempotencyKey)
		if err != nil {
			return nil, false, err
		}
		if prev != nil && now.Sub(prev.CreatedAt) < IdempotencyWindow {
			return prev, true, nil
		}
	}
	r.ID = uuid.New()
	r.Status = StatusQueued
	r.Attempt = 0
	r.ActionsTotal = len(in.Actions)
	r.ActionsExecuted, r.ActionsFailed, r.ActionsSkipped = 0, 0, 0
	r.CreatedAt, r.UpdatedAt = now, now
	if r.Variables == nil {
		r.Variables = map[string]string{}
	}
	if r.ScreenshotPaths == nil {
		r.ScreenshotPaths = []string{}
	}
	if len(r.Options) == 0 {
		r.Options = []byte("{}")
	}
	rows := make([]RunAction, len(in.Actions))
	for i, a := range in.Actions {
		rows[i] = RunAction{
			RunID: r.ID, ActionID: a.ID, ActionIndex: i, ActionType: a.Type,
			Status: ActionPending, Warnings: []string{}, CreatedAt: now, UpdatedAt: now,
		}
	}
	if r.IdempotencyKey != nil {
		err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			// An expired key is released so that the unique index lets it be used again.
			_, err := tx.NewUpdate().Model((*Run)(nil)).
				Set("idempotency_key = NULL").
				Where("user_id = ?", r.UserID).
				Where("idempotency_key = ?", *r.IdempotencyKey).
				Where("created_at <= ?", now.Add(-IdempotencyWindow)).
				Exec(ctx)
			if err != nil {
				return fmt.Errorf("release expired idempotency key: %w", err)
			}
			return insertRun(ctx, tx, r, rows)
		})
	} else {
		err = insertRun(ctx, db, r, rows)
	}
	if err == nil {
		err = dispatch(ctx, db, r, in.Enqueue)
	}
	if err != nil && r.IdempotencyKey != nil && uniqueViolationOn(err, "runs_idempotency_key") {
		// A concurrent request with the same key won; it is the first run.
		prev, lerr := runByIdempotencyKey(ctx, db, r.UserID, *r.IdempotencyKey)
		if lerr == nil && prev != nil {
			return prev, true, nil
		}
	}
	if err != nil {
		var eq *EnqueueError
		if errors.As(err, &eq) {
			return nil, false, eq
		}
		return nil, false, fmt.Errorf("create run of recording %s: %w", r.RecordingID, err)
	}
	return r, false, nil
}

// insertRun writes the run and its pending rows in one statement (a
// data-modifying WITH: both or neither, without a transaction's BEGIN and
// COMMIT round trips). The run has no stream entry yet (job_id empty).
func insertRun(ctx context.Context, db bun.IDB, r *Run, rows []RunAction) error {
	if conn, ok := rawConn(db); ok {
		args, err := insertRunArgs(r, rows)
		if err != nil {
			return fmt.Errorf("insert run: %w", err)
		}
		if _, err := conn.ExecContext(ctx, insertRunSQL, args...); err != nil {
			return fmt.Errorf("insert run: %w", err)
		}
		if r.Artifacts == nil {
			r.Artifacts = []Artifact{}
		}
		if r.ArtifactWarnings == nil {
			r.ArtifactWarnings = []string{}
		}
		return nil
	}
	q := db.NewSelect().With("run", db.NewInsert().Model(r).Returning("*"))
	if len(rows) > 0 {
		q = q.With("rows", db.NewInsert().Model(&rows))
	}
	if err := q.Table("run").ColumnExpr("*").Scan(ctx, r); err != nil {
		return fmt.Errorf("insert run: %w", err)
	}
	return nil
}

// dispatch puts a written run on the stream and records its entry. The
// entry is added after the run is committed, so a worker's first read of
// the run always finds it. Should the API die between the two, the run is
// queued with no entry and the reconciler gives it one after a lease.
// Should the stream refuse it, the run is removed again (while it has no
// entry nobody can have started it) and the caller told: nothing is kept
// that the client was told failed, unless that removal fails too, when the
// reconciler dispatches it.
func dispatch(ctx context.Context, db bun.IDB, r *Run, enqueue EnqueueFunc) error {
	queueName, entryID, err := enqueue(ctx, r.ID)
	if err != nil {
		// Removed even when the request's context ended (a client gone is
		// often why the enqueue failed).
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, derr := db.NewDelete().Model((*Run)(nil)).
			Where("id = ?", r.ID).Where("status = ?", StatusQueued).Where("job_id = ''").
			Exec(dctx); derr != nil {
			return &EnqueueError{Err: fmt.Errorf("%w (and the run %s could not be removed: %v)", err, r.ID, derr)}
		}
		return &EnqueueError{Err: err}
	}
	r.QueueName, r.JobID = queueName, entryID
	// A compare-and-set on the empty entry: a reconciler that gave the run
	// an entry first keeps its own.
	if conn, ok := rawConn(db); ok {
		_, err = conn.ExecContext(ctx, recordEntrySQL, queueName, entryID, r.ID.String())
	} else {
		_, err = db.NewUpdate().Model((*Run)(nil)).
			Set("queue_name = ?", queueName).
			Set("job_id = ?", entryID).
			Where("id = ?", r.ID).
			Where("job_id = ''").
			Exec(ctx)
	}
	// An error here is not the client's: the entry is out and the run will
	// be pulled and started, so it was created. Only the record of its
	// entry is missing, which costs at most a duplicate entry from the
	// reconciler (acked by its claim).
	_ = err
	return nil
}

func runByIdempotencyKey(ctx context.Context, db bun.IDB, userID uuid.UUID, key string) (*Run, error) {
	run := new(Run)
	err := db.NewSelect().Model(run).
		Where("user_id = ?", userID).
		Where("idempotency_key = ?", key).
		Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up idempotency key: %w", err)
	}
	return run, nil
}

// GetUserRun loads userID's live (not deleted) run id, or ErrRunNotFound.
func GetUserRun(ctx context.Context, db bun.IDB, userID, id uuid.UUID) (*Run, error) {
	run := new(Run)
	err := db.NewSelect().Model(run).
		Where("id = ?", id).
		Where("user_id = ?", userID).
		Where("deleted_at IS NULL").
		Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrRunNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load run %s: %w", id, err)
	}
	return run, nil
}

// runWithHealth is a run read with its rows' selector health in the same
// statement.
type runWithHealth struct {
	Run    `bun:",extend"`
	Health json.RawMessage `bun:"health,scanonly"`
}

// GetUserRunHealth loads userID's live run id, like GetUserRun, together
// with the action rows that carry a selector health (action id, index and
// the health as the only metadata, in index order), in one round trip: GET /runs/:id needs both and
// is the API's hottest read.
func GetUserRunHealth(ctx context.Context, db bun.IDB, userID, id uuid.UUID) (*Run, []RunAction, error) {
	row := new(runWithHealth)
	err := db.NewSelect().Model(row).
		ColumnExpr("run.*").
		// Only the rows whose metadata holds a selector health, and only
		// that part of it: pending rows (metadata null) and the rest of
		// the metadata cost PostgreSQL and the API a decode each for
		// nothing.
		ColumnExpr(`(SELECT coalesce(json_agg(json_build_object('i', a.action_index, 'a', a.action_id,
			'm', jsonb_build_object('selectorHealth', a.metadata->'selectorHealth')) ORDER BY a.action_index), '[]')
			FROM run_actions a WHERE a.run_id = run.id AND jsonb_typeof(a.metadata->'selectorHealth') = 'object') AS health`).
		Where("run.id = ?", id).
		Where("run.user_id = ?", userID).
		Where("run.deleted_at IS NULL").
		Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, ErrRunNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load run %s: %w", id, err)
	}
	var hs []struct {
		Index    int             `json:"i"`
		ActionID string          `json:"a"`
		Metadata json.RawMessage `json:"m"`
	}
	if err := json.Unmarshal(row.Health, &hs); err != nil {
		return nil, nil, fmt.Errorf("load selector health of run %s: %w", id, err)
	}
	rows := make([]RunAction, len(hs))
	for i, h := range hs {
		rows[i] = RunAction{RunID: id, ActionID: h.ActionID, ActionIndex: h.Index, Metadata: h.Metadata}
	}
	return &row.Run, rows, nil
}

// ListRunActions returns the action rows of run id ordered by action index.
func ListRunActions(ctx context.Context, db bun.IDB, runID uuid.UUID) ([]RunAction, error) {
	var rows []RunAction
	err := db.NewSelect().Model(&rows).
		Where("run_id = ?", runID).
		OrderExpr("action_index ASC").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list actions of run %s: %w", runID, err)
	}
	return rows, nil
}

// ListUserRunActions returns the action rows of userID's live run id in
// index order, or ErrRunNotFound, in one round trip when the run has rows.
func ListUserRunActions(ctx context.Context, db bun.IDB, userID, runID uuid.UUID) ([]RunAction, error) {
	var rows []RunAction
	err := db.NewSelect().Model(&rows).
		Where("run_id = ?", runID).
		Where("EXISTS (SELECT 1 FROM runs r WHERE r.id = ? AND r.user_id = ? AND r.deleted_at IS NULL)", runID, userID).
		OrderExpr("action_index ASC").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list actions of run %s: %w", runID, err)
	}
	if len(rows) == 0 {
		// No rows: a run of no actions, or none of the user's.
		if _, err := GetUserRun(ctx, db, userID, runID); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// Sort keys of ListRuns.
const (
	RunSortCreatedAt   = "createdAt"
	RunSortStartedAt   = "startedAt"
	RunSortCompletedAt = "completedAt"
	RunSortStatus      = "status"
)

// RunSortKeys lists the sort keys ListRuns accepts.
func RunSortKeys() []string {
	return []string{RunSortCreatedAt, RunSortStartedAt, RunSortCompletedAt, RunSortStatus}
}

// RunQuery selects a page of a user's live runs.
type RunQuery struct {
	UserID      uuid.UUID
	Limit       int
	Offset      int
	Statuses    []string   // any of them; empty means all
	RecordingID *uuid.UUID // optional
	Browser     string     // optional
	TriggeredBy string     // optional
	// SortBy is one of RunSortKeys (default createdAt). Ties are broken by
	// id in the same direction, and runs not yet started or completed sort
	// last, so pages never overlap.
	SortBy string
	Asc    bool
}

// runSort is how a RunQuery orders: column, whether it may be NULL (sorted
// last), direction, and the SQL type its cursor value is cast to.
type runSort struct {
	col      string
	nullable bool
	asc      bool
	cast     string
}

func (q RunQuery) sort() (runSort, error) {
	switch q.SortBy {
	case RunSortCreatedAt, "":
		return runSort{col: "created_at", asc: q.Asc, cast: "timestamptz"}, nil
	case RunSortStartedAt:
		return runSort{col: "started_at", nullable: true, asc: q.Asc, cast: "timestamptz"}, nil
	case RunSortCompletedAt:
		return runSort{col: "completed_at", nullable: true, asc: q.Asc, cast: "timestamptz"}, nil
	case RunSortStatus:
		return runSort{col: "status", asc: q.Asc, cast: "run_status"}, nil
	}
	return runSort{}, fmt.Errorf("list runs: unknown sort key %q", q.SortBy)
}

func (o runSort) order() string {
	dir := "DESC"
	if o.asc {
		dir = "ASC"
	}
	order := o.col + " " + dir
	if o.nullable {
		// Only for nullable columns: on NOT NULL ones it would stop the
		// (created_at DESC, id DESC) index from serving the order.
		order += " NULLS LAST"
	}
	return order + ", id " + dir
}

// filter adds q's conditions (user, live, status, recording, browser,
// trigger) to sel.
func (q RunQuery) filter(sel *bun.SelectQuery) *bun.SelectQuery {
	sel = sel.Where("user_id = ?", q.UserID).Where("deleted_at IS NULL")
	switch len(q.Statuses) {
	case 0:
	case 1:
		sel = sel.Where("status = ?", q.Statuses[0])
	default:
		sel = sel.Where("status IN (?)", bun.List(q.Statuses))
	}
	if q.RecordingID != nil {
		sel = sel.Where("recording_id = ?", *q.RecordingID)
	}
	if q.Browser != "" {
		sel = sel.Where("browser = ?", q.Browser)
	}
	if q.TriggeredBy != "" {
		sel = sel.Where("triggered_by = ?", q.TriggeredBy)
	}
	return sel
}

// ListRuns returns a page of runs and the number of runs matching q.
func ListRuns(ctx context.Context, db bun.IDB, q RunQuery) ([]Run, int, error) {
	o, err := q.sort()
	if err != nil {
		return nil, 0, err
	}
	var runs []Run
	total, err := q.filter(db.NewSelect().Model(&runs)).
		OrderExpr(o.order()).
		Limit(int64(q.Limit)).Offset(int64(q.Offset)).
		ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list runs: %w", err)
	}
	return runs, int(total), nil
}

// RunCursor is where a keyset page of ListRunsPage starts: just after the
// run with this sort value and id, in the order it was made for.
type RunCursor struct {
	SortBy string    `json:"s"`
	Asc    bool      `json:"a"`
	Value  *string   `json:"v"` // the sort column as text; nil: NULL
	ID     uuid.UUID `json:"i"`
}

// ErrBadCursor means a cursor was made for another order, or is not one.
var ErrBadCursor = errors.New("cursor does not belong to this list's order")

// ListRunsPage returns up to q.Limit runs after cursor (nil: from the
// first, skipping q.Offset), without counting, and the cursor of the next page (nil on the
// last). It reads by the index of the order from the cursor on, so a page
// deep in a long list costs what the first does.
func ListRunsPage(ctx context.Context, db bun.IDB, q RunQuery, after *RunCursor) ([]Run, *RunCursor, error) {
	o, err := q.sort()
	if err != nil {
		return nil, nil, err
	}
	var runs []Run
	sel := q.filter(db.NewSelect().Model(&runs))
	if after != nil {
		if sortKey(after.SortBy) != sortKey(q.SortBy) || after.Asc != q.Asc {
			return nil, nil, ErrBadCursor
		}
		op := "<"
		if o.asc {
			op = ">"
		}
		switch {
		case after.Value == nil && !o.nullable:
			return nil, nil, ErrBadCursor
		case after.Value == nil:
			sel = sel.Where("? IS NULL AND id "+op+" ?", bun.Ident(o.col), after.ID)
		case o.nullable:
			sel = sel.Where("(? "+op+" ?::"+o.cast+" OR (? = ?::"+o.cast+" AND id "+op+" ?) OR ? IS NULL)",
				bun.Ident(o.col), *after.Value, bun.Ident(o.col), *after.Value, after.ID, bun.Ident(o.col))
		default:
			sel = sel.Where("(?, id) "+op+" (?::"+o.cast+", ?)", bun.Ident(o.col), *after.Value, after.ID)
		}
	}
	if after == nil && q.Offset > 0 {
		sel = sel.Offset(int64(q.Offset))
	}
	if err := sel.OrderExpr(o.order()).Limit(int64(q.Limit) + 1).Scan(ctx); err != nil {
		return nil, nil, fmt.Errorf("list runs: %w", err)
	}
	if len(runs) <= q.Limit {
		return runs, nil, nil
	}
	runs = runs[:q.Limit]
	last := &runs[len(runs)-1]
	next := &RunCursor{SortBy: q.SortBy, Asc: q.Asc, ID: last.ID}
	var v *time.Time
	switch o.col {
	case "created_at":
		v = &last.CreatedAt
	case "started_at":
		v = last.StartedAt
	case "completed_at":
		v = last.CompletedAt
	case "status":
		st := string(last.Status)
		next.Value = &st
	}
	if v != nil {
		t := v.UTC().Format(time.RFC3339Nano)
		next.Value = &t
	}
	return runs, next, nil
}

func sortKey(s string) string {
	if s == "" {
		return RunSortCreatedAt
	}
	return s
}

// CountRuns counts the runs matching q (its page and cursor aside). With
// exact false, it counts exactly up to upTo and beyond that answers the
// planner's estimate (no scan of every row), with exact false.
func CountRuns(ctx context.Context, db bun.IDB, q RunQuery, exact bool, upTo int) (n int, isExact bool, err error) {
	if exact {
		c, err := q.filter(db.NewSelect().Model((*Run)(nil))).Count(ctx)
		if err != nil {
			return 0, false, fmt.Errorf("count runs: %w", err)
		}
		return int(c), true, nil
	}
	inner := q.filter(db.NewSelect().Model((*Run)(nil)).ColumnExpr("1")).Limit(int64(upTo) + 1)
	if err := db.NewSelect().TableExpr("(?) AS capped", inner).ColumnExpr("count(*)").Scan(ctx, &n); err != nil {
		return 0, false, fmt.Errorf("count runs: %w", err)
	}
	if n <= upTo {
		return n, true, nil
	}
	var plan []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		} `json:"Plan"`
	}
	var doc []byte
	est := q.filter(db.NewSelect().Model((*Run)(nil)).ColumnExpr("1")).String()
	if err := db.QueryRowContext(ctx, "EXPLAIN (FORMAT JSON) "+est).Scan(&doc); err != nil {
		return 0, false, fmt.Errorf("estimate runs: %w", err)
	}
	if err := json.Unmarshal(doc, &plan); err != nil || len(plan) == 0 {
		return 0, false, fmt.Errorf("estimate runs: plan %q: %v", doc, err)
	}
	return max(n, int(plan[0].Plan.Rows)), false, nil
}

// CancelQueuedUserRun ends userID's queued run id as cancelled at now, its
// pending actions skipped with reason "cancelled". It is a compare-and-set
// on status queued: ErrStale means the run is no longer queued.
func CancelQueuedUserRun(ctx context.Context, db bun.IDB, userID, id uuid.UUID, now time.Time) error {
	return endUnfinished(ctx, db, unfinished{t: TCancelQueued, id: id, user: &userID, from: StatusQueued,
		status: StatusCancelled, reason: "cancelled", now: now})
}

// RequestUserRunCancel records that a cancel of userID's running run id was
// asked for at now (an earlier request time is kept). It is a
// compare-and-set on status running: ErrStale means the run is no longer
// running.
func RequestUserRunCancel(ctx context.Context, db bun.IDB, userID, id uuid.UUID, now time.Time) error {
	res, err := db.NewUpdate().Model((*Run)(nil)).
		Set("cancel_requested_at = COALESCE(cancel_requested_at, ?)", now).
		Set("updated_at = ?", now).
		Where("id = ?", id).
		Where("user_id = ?", userID).
		Where("status = ?", StatusRunning).
		Exec(ctx)
	if err := affected(res, err, ErrStale, "request cancel of run %s", id); err != nil {
		return err
	}
	return nil
}

// SoftDeleteUserRun hides userID's live run id from reads and lists. It
// does not change the status: callers cancel an unfinished run first.
func SoftDeleteUserRun(ctx context.Context, db bun.IDB, userID, id uuid.UUID, now time.Time) error {
	res, err := db.NewUpdate().Model((*Run)(nil)).
		Set("deleted_at = ?", now).
		Set("updated_at = ?", now).
		Where("id = ?", id).
		Where("user_id = ?", userID).
		Where("deleted_at IS NULL").
		Exec(ctx)
	if err := affected(res, err, ErrRunNotFound, "delete run %s", id); err != nil {
		return err
	}
	return nil
}

// RunOptions are the options of a run as stored, resolved with their
// defaults, in runs.options (the worker reads them from there; the main ones
// are also columns). REPLAY.md §6 defines them.
type RunOptions struct {
	// Browser to run in: chromium (default); firefox and webkit exist in
	// the schema but cannot be driven through Rod.
	Browser string `json:"browser"`
	// Headless runs without a window (default true).
	Headless bool `json:"headless"`
	// Timeout is the per-action timeout in ms (default 30000, 1000-600000).
	Timeout int `json:"timeout"`
	// Video records the whole run as one file (default false).
	Video bool `json:"video"`
	// Screenshot enables screenshots (default false), taken as
	// ScreenshotMode says: on-failure (default), always or never.
	Screenshot     bool   `json:"screenshot"`
	ScreenshotMode string `json:"screenshotMode"`
	// TimingEnabled replays the recorded pauses (default true), scaled by
	// TimingMode (realistic 1 (default), fast 0.25, instant 0) and divided
	// by SpeedMultiplier (default 1, 0.1-10; 2 is twice as fast), each wait
	// capped at MaxActionDelay ms (default 30000, 0-600000).
	TimingEnabled   bool    `json:"timingEnabled"`
	TimingMode      string  `json:"timingMode"`
	SpeedMultiplier float64 `json:"speedMultiplier"`
	MaxActionDelay  int     `json:"maxActionDelay"`
	// ContinueOnError keeps going after a failed action (default false).
	ContinueOnError bool `json:"continueOnError"`
	// AssertAutoCheckpoints asserts checkpoints marked auto instead of
	// skipping them (default false).
	AssertAutoCheckpoints bool `json:"assertAutoCheckpoints"`
	// Isolation is "context" (default: a fresh incognito context in a
	// pooled browser) or "browser" (a browser process of the run's own).
	Isolation string `json:"isolation"`
}

// Defaults and ranges of RunOptions.
const (
	DefaultBrowser         = "chromium"
	DefaultTimeoutMs       = 30000
	MinTimeoutMs           = 1000
	MaxTimeoutMs           = 600000
	DefaultScreenshotMode  = "on-failure"
	DefaultTimingMode      = "realistic"
	DefaultSpeedMultiplier = 1.0
	MinSpeedMultiplier     = 0.1
	MaxSpeedMultiplier     = 10.0
	DefaultMaxActionDelay  = 30000
	MaxMaxActionDelay      = 600000
	DefaultIsolation       = "context"
)

// DefaultRunOptions returns the options of a run that asks for none.
func DefaultRunOptions() RunOptions {
	return RunOptions{
		Browser:         DefaultBrowser,
		Headless:        true,
		Timeout:         DefaultTimeoutMs,
		ScreenshotMode:  DefaultScreenshotMode,
		TimingEnabled:   true,
		TimingMode:      DefaultTimingMode,
		SpeedMultiplier: DefaultSpeedMultiplier,
		MaxActionDelay:  DefaultMaxActionDelay,
		Isolation:       DefaultIsolation,
	}
}

// ApplyTo copies the options into run's option columns and its options
// document.
func (o RunOptions) ApplyTo(run *Run) error {
	doc, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("encode run options: %w", err)
	}
	run.Options = doc
	run.Browser = o.Browser
	run.Headless = o.Headless
	run.Timeout = o.Timeout
	run.VideoEnabled = o.Video
	run.ScreenshotEnabled = o.Screenshot
	run.ScreenshotMode = o.ScreenshotMode
	run.TimingEnabled = o.TimingEnabled
	run.TimingMode = o.TimingMode
	run.SpeedMultiplier = o.SpeedMultiplier
	run.ContinueOnError = o.ContinueOnError
	run.AssertAutoCheckpoints = o.AssertAutoCheckpoints
	return nil
}

// ParseRunOptions reads a run's stored options document over the defaults
// (a key missing from an older document keeps its default) and checks it.
func ParseRunOptions(doc []byte) (RunOptions, error) {
	o := DefaultRunOptions()
	if len(doc) > 0 {
		if err := json.Unmarshal(doc, &o); err != nil {
			return o, fmt.Errorf("run options: %w", err)
		}
	}
	if problems := o.Validate(); len(problems) > 0 {
		return o, fmt.Errorf("run options: %s", problems[0])
	}
	return o, nil
}

// OptionProblem is one option out of its bounds.
type OptionProblem struct {
	Field   string // the option's JSON name
	Message string
}

func (p OptionProblem) String() string { return p.Field + ": " + p.Message }

// Validate checks every option against its bounds and allowed values.
func (o RunOptions) Validate() []OptionProblem {
	var ps []OptionProblem
	bad := func(field, format string, args ...any) {
		ps = append(ps, OptionProblem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if o.Timeout < MinTimeoutMs || o.Timeout > MaxTimeoutMs {
		bad("timeout", "must be from %d to %d ms", MinTimeoutMs, MaxTimeoutMs)
	}
	if !slices.Contains(ScreenshotModes(), o.ScreenshotMode) {
		bad("screenshotMode", "must be %s", strings.Join(ScreenshotModes(), ", "))
	}
	if !slices.Contains(TimingModes(), o.TimingMode) {
		bad("timingMode", "must be %s", strings.Join(TimingModes(), ", "))
	}
	if o.SpeedMultiplier < MinSpeedMultiplier || o.SpeedMultiplier > MaxSpeedMultiplier {
		bad("speedMultiplier", "must be from %g to %g", MinSpeedMultiplier, MaxSpeedMultiplier)
	}
	if o.MaxActionDelay < 0 || o.MaxActionDelay > MaxMaxActionDelay {
		bad("maxActionDelay", "must be from 0 to %d ms", MaxMaxActionDelay)
	}
	if !slices.Contains(Isolations(), o.Isolation) {
		bad("isolation", "must be %s", strings.Join(Isolations(), ", "))
	}
	return ps
}

// ScreenshotModes lists the values of RunOptions.ScreenshotMode.
func ScreenshotModes() []string { return []string{"on-failure", "always", "never"} }

// TimingModes lists the values of RunOptions.TimingMode.
func TimingModes() []string { return []string{"realistic", "fast", "instant"} }

// Isolations lists the values of RunOptions.Isolation.
func Isolations() []string { return []string{"context", "browser"} }
