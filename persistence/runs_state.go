package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// ErrStale means a compare-and-set found the run no longer in the state the
// caller expected: another worker took a newer attempt, the run was
// cancelled, or it already finished. The caller must stop touching the run.
var ErrStale = errors.New("run changed under us")

// ErrRunNotFound means no live row exists for the run id.
var ErrRunNotFound = errors.New("run not found")

// Runs holds the worker-side transitions of runs. Every status change is a
// compare-and-set on (id, status, attempt) so that a stale worker can never
// overwrite a newer attempt, a cancel, or a finished result.
type Runs struct {
	DB  bun.IDB
	Now func() time.Time
}

func (s *Runs) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Get loads a run by id, deleted or not (the worker must see a run deleted
// while running to cancel it).
func (s *Runs) Get(ctx context.Context, id uuid.UUID) (*Run, error) {
	run := new(Run)
	err := s.DB.NewSelect().Model(run).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrRunNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load run %s: %w", id, err)
	}
	return run, nil
}

// RecordingData returns the recorder JSON of a run's recording, even when the
// recording was soft-deleted after the run was queued.
func (s *Runs) RecordingData(ctx context.Context, recordingID uuid.UUID) ([]byte, error) {
	var data []byte
	err := s.DB.NewSelect().Model((*Recording)(nil)).Column("data").Where("id = ?", recordingID).Scan(ctx, &data)
	if err != nil {
		return nil, fmt.Errorf("load recording %s: %w", recordingID, err)
	}
	return data, nil
}

// Owner identifies the worker and actor that run an attempt, so cancel
// messages can find it.
type Owner struct {
	Worker       string
	ActorAddress string
	ActorID      string
}

// StartAttempt moves a run from (fromStatus, fromAttempt) to running with
// attempt fromAttempt+1 owned by o, with a lease until leaseUntil, and resets
// its action rows to pending for the new attempt. fromStatus is queued for a
// fresh pull, or running when a coordinator reclaims an abandoned attempt.
// A run whose cancel was requested is not started.
func (s *Runs) StartAttempt(ctx context.Context, id uuid.UUID, fromStatus string, fromAttempt int, o Owner, leaseUntil time.Time) (*Run, error) {
	run := new(Run)
	now := s.now()
	err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model(run).
			Set("status = ?", StatusRunning).
			Set("attempt = attempt + 1").
			Set("worker_node = ?", o.Worker).
			Set("actor_address = ?", o.ActorAddress).
			Set("actor_id = ?", o.ActorID).
			Set("lease_expires_at = ?", leaseUntil).
			Set("started_at = ?", now).
			Set("completed_at = NULL").
			Set("actions_executed = 0, actions_failed = 0, actions_skipped = 0").
			Set("error_message = NULL, error_action_id = NULL").
			Set("updated_at = ?", now).
			Where("id = ?", id).
			Where("status = ?", fromStatus).
			Where("attempt = ?", fromAttempt).
			Where("cancel_requested_at IS NULL").
			Where("deleted_at IS NULL").
			Returning("*").
			Exec(ctx)
		if err := affected(res, err, ErrStale, "start run %s", id); err != nil {
			return err
		}
		_, err = tx.NewUpdate().Model((*RunAction)(nil)).
			Set("attempt = ?", run.Attempt).
			Set("status = ?", ActionPending).
			Set("started_at = NULL, completed_at = NULL, duration_ms = NULL").
			Set("selector_used = NULL, error_message = NULL, reason = NULL, screenshot_path = NULL").
			Set("warnings = '[]'").
			Set("updated_at = ?", now).
			Where("run_id = ?", id).
			Exec(ctx)
		if err != nil {
			return fmt.Errorf("reset actions of run %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return run, nil
}

// EnsureActions writes a pending row for each action that has none yet, so a
// run always has one row per action of its recording.
func (s *Runs) EnsureActions(ctx context.Context, id uuid.UUID, attempt int, refs []ActionRef) error {
	if len(refs) == 0 {
		return nil
	}
	rows := make([]RunAction, len(refs))
	for i, r := range refs {
		rows[i] = RunAction{RunID: id, Attempt: attempt, ActionID: r.ID, ActionIndex: i, ActionType: r.Type, Status: ActionPending, Warnings: []string{}}
	}
	_, err := s.DB.NewInsert().Model(&rows).On("CONFLICT (run_id, action_index) DO NOTHING").Exec(ctx)
	if err != nil {
		return fmt.Errorf("write pending actions of run %s: %w", id, err)
	}
	return nil
}

// ActionRef names one action of a recording, in replay order.
type ActionRef struct {
	ID   string
	Type string
}

// SaveAction writes the result of one action of attempt. It does nothing and
// returns ErrStale when the run is no longer running at that attempt.
func (s *Runs) SaveAction(ctx context.Context, id uuid.UUID, attempt int, a *RunAction) error {
	if a.Warnings == nil {
		a.Warnings = []string{}
	}
	a.RunID, a.Attempt = id, attempt
	now := s.now()
	res, err := s.DB.NewUpdate().Model(a).
		Column("status", "started_at", "completed_at", "duration_ms", "selector_used", "error_message", "reason", "warnings", "screenshot_path", "metadata").
		Set("attempt = ?", attempt).
		Set("updated_at = ?", now).
		Where("run_id = ?", id).
		Where("action_index = ?", a.ActionIndex).
		Where("EXISTS (SELECT 1 FROM runs WHERE runs.id = ? AND runs.status = ? AND runs.attempt = ?)", id, StatusRunning, attempt).
		Exec(ctx)
	if err := affected(res, err, ErrStale, "save action %d of run %s", a.ActionIndex, id); err != nil {
		return err
	}
	return nil
}

// Outcome is the final result of an attempt.
type Outcome struct {
	Status          string
	ActionsTotal    int
	ActionsExecuted int
	ActionsFailed   int
	ActionsSkipped  int
	DurationMs      int64
	StartedAt       *time.Time
	CompletedAt     time.Time
	ErrorMessage    string
	ErrorActionID   string
	VideoPath       string
	Screenshots     []string
}

// Finish moves a running attempt to its terminal status. ErrStale means the
// attempt is no longer the run's current one (or the run already finished).
func (s *Runs) Finish(ctx context.Context, id uuid.UUID, attempt int, o Outcome) error {
	if !IsTerminal(o.Status) {
		return fmt.Errorf("finish run %s: %q is not a terminal status", id, o.Status)
	}
	if o.Screenshots == nil {
		o.Screenshots = []string{}
	}
	q := s.DB.NewUpdate().Model((*Run)(nil)).
		Set("status = ?", o.Status).
		Set("actions_total = ?", o.ActionsTotal).
		Set("actions_executed = ?", o.ActionsExecuted).
		Set("actions_failed = ?", o.ActionsFailed).
		Set("actions_skipped = ?", o.ActionsSkipped).
		Set("duration_ms = ?", o.DurationMs).
		Set("completed_at = ?", o.CompletedAt.UTC()).
		Set("error_message = ?", nullString(o.ErrorMessage)).
		Set("error_action_id = ?", nullString(o.ErrorActionID)).
		Set("video_path = ?", nullString(o.VideoPath)).
		Set("screenshot_paths = ?::jsonb", mustJSON(o.Screenshots)).
		Set("lease_expires_at = NULL").
		Set("updated_at = ?", s.now()).
		Where("id = ?", id).
		Where("status = ?", StatusRunning).
		Where("attempt = ?", attempt)
	if o.StartedAt != nil {
		q = q.Set("started_at = ?", o.StartedAt.UTC())
	}
	res, err := q.Exec(ctx)
	if err := affected(res, err, ErrStale, "finish run %s", id); err != nil {
		return err
	}
	return nil
}

// Lease is what a lease renewal learns about its run.
type Lease struct {
	CancelRequested bool
}

// RenewLease extends the lease of a running attempt and reports whether a
// cancel was requested meanwhile (the fallback when the cancel message was
// missed). ErrStale means the attempt lost the run.
func (s *Runs) RenewLease(ctx context.Context, id uuid.UUID, attempt int, until time.Time) (Lease, error) {
	var cancelAt *time.Time
	var deletedAt *time.Time
	err := s.DB.NewUpdate().Model((*Run)(nil)).
		Set("lease_expires_at = ?", until).
		Where("id = ?", id).
		Where("status = ?", StatusRunning).
		Where("attempt = ?", attempt).
		Returning("cancel_requested_at, deleted_at").
		Scan(ctx, &cancelAt, &deletedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Lease{}, ErrStale
	}
	if err != nil {
		return Lease{}, fmt.Errorf("renew lease of run %s: %w", id, err)
	}
	return Lease{CancelRequested: cancelAt != nil || deletedAt != nil}, nil
}

// Requeue hands a running attempt back as queued (graceful shutdown): the
// next worker starts it as the next attempt.
func (s *Runs) Requeue(ctx context.Context, id uuid.UUID, attempt int) error {
	res, err := s.DB.NewUpdate().Model((*Run)(nil)).
		Set("status = ?", StatusQueued).
		Set("worker_node = '', actor_address = '', actor_id = ''").
		Set("lease_expires_at = NULL").
		Set("updated_at = ?", s.now()).
		Where("id = ?", id).
		Where("status = ?", StatusRunning).
		Where("attempt = ?", attempt).
		Exec(ctx)
	if err := affected(res, err, ErrStale, "requeue run %s", id); err != nil {
		return err
	}
	return nil
}

// Fail ends a run that is in (fromStatus, attempt) as failed with msg, and
// marks its unfinished actions skipped with the same reason. Used when a run
// cannot be executed at all (worker lost, crash budget spent, bad recording).
func (s *Runs) Fail(ctx context.Context, id uuid.UUID, fromStatus string, attempt int, msg string) error {
	return s.endUnfinished(ctx, id, fromStatus, attempt, StatusFailed, msg, msg)
}

// Cancel ends a run in (fromStatus, attempt) as cancelled, its unfinished
// actions skipped with reason "cancelled".
func (s *Runs) Cancel(ctx context.Context, id uuid.UUID, fromStatus string, attempt int) error {
	return s.endUnfinished(ctx, id, fromStatus, attempt, StatusCancelled, "", "cancelled")
}

// CancelQueued ends a queued run as cancelled.
func (s *Runs) CancelQueued(ctx context.Context, id uuid.UUID) error {
	return endUnfinished(ctx, s.DB, unfinished{id: id, from: StatusQueued, status: StatusCancelled, reason: "cancelled", now: s.now()})
}

func (s *Runs) endUnfinished(ctx context.Context, id uuid.UUID, fromStatus string, attempt int, status, msg, reason string) error {
	return endUnfinished(ctx, s.DB, unfinished{id: id, from: fromStatus, attempt: &attempt, status: status, msg: msg, reason: reason, now: s.now()})
}

// unfinished says which run endUnfinished ends, from what, and how.
type unfinished struct {
	id      uuid.UUID
	user    *uuid.UUID // when set, only that user's run
	from    string
	attempt *int // when set, only that attempt
	status  string
	msg     string
	reason  string // of the actions skipped
	now     time.Time
}

// endUnfinished moves a run from u.from to the terminal u.status in one
// transaction: the run row (compare-and-set), its pending actions skipped
// with u.reason, and its counters recomputed from the rows.
func endUnfinished(ctx context.Context, db bun.IDB, u unfinished) error {
	id, now := u.id, u.now
	status, reason := u.status, u.reason
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		q := tx.NewUpdate().Model((*Run)(nil)).
			Set("status = ?", status).
			Set("error_message = ?", nullString(u.msg)).
			Set("completed_at = ?", now).
			Set("lease_expires_at = NULL").
			Set("updated_at = ?", now).
			Where("id = ?", id).
			Where("status = ?", u.from)
		if status == StatusCancelled {
			q = q.Set("cancel_requested_at = COALESCE(cancel_requested_at, ?)", now)
		}
		if u.attempt != nil {
			q = q.Where("attempt = ?", *u.attempt)
		}
		if u.user != nil {
			q = q.Where("user_id = ?", *u.user)
		}
		res, err := q.Exec(ctx)
		if err := affected(res, err, ErrStale, "end run %s as %s", id, status); err != nil {
			return err
		}
		_, err = tx.NewUpdate().Model((*RunAction)(nil)).
			Set("status = ?", ActionSkipped).
			Set("reason = ?", reason).
			Set("updated_at = ?", now).
			Where("run_id = ?", id).
			Where("status = ?", ActionPending).
			Exec(ctx)
		if err != nil {
			return fmt.Errorf("skip actions of run %s: %w", id, err)
		}
		// Counters follow the rows so a failed or cancelled run reads consistently.
		_, err = tx.NewRaw(`UPDATE runs SET
			actions_total = c.total, actions_executed = c.executed, actions_failed = c.failed, actions_skipped = c.skipped
			FROM (SELECT count(*) AS total,
				count(*) FILTER (WHERE status IN ('success','failed','timeout')) AS executed,
				count(*) FILTER (WHERE status IN ('failed','timeout')) AS failed,
				count(*) FILTER (WHERE status = 'skipped') AS skipped
				FROM run_actions WHERE run_id = ?) c
			WHERE runs.id = ?`, id, id).Exec(ctx)
		if err != nil {
			return fmt.Errorf("count actions of run %s: %w", id, err)
		}
		return nil
	})
}

// Stuck lists running runs whose lease expired before t: their worker is gone.
func (s *Runs) Stuck(ctx context.Context, t time.Time, limit int) ([]Run, error) {
	var runs []Run
	err := s.DB.NewSelect().Model(&runs).
		Where("status = ?", StatusRunning).
		Where("lease_expires_at < ?", t).
		OrderExpr("lease_expires_at").
		Limit(int64(limit)).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list stuck runs: %w", err)
	}
	return runs, nil
}

// QueuedBefore lists queued runs last updated before t, oldest first.
func (s *Runs) QueuedBefore(ctx context.Context, t time.Time, limit int) ([]Run, error) {
	var runs []Run
	err := s.DB.NewSelect().Model(&runs).
		Where("status = ?", StatusQueued).
		Where("updated_at < ?", t).
		OrderExpr("updated_at").
		Limit(int64(limit)).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list queued runs: %w", err)
	}
	return runs, nil
}

// SetJob records the stream entry that dispatches a run.
func (s *Runs) SetJob(ctx context.Context, id uuid.UUID, queueName, entryID string) error {
	_, err := s.DB.NewUpdate().Model((*Run)(nil)).
		Set("queue_name = ?", queueName).
		Set("job_id = ?", entryID).
		Set("updated_at = ?", s.now()).
		Where("id = ?", id).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("record job of run %s: %w", id, err)
	}
	return nil
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func mustJSON(v []string) string {
	b, err := json.Marshal(v)
	if err != nil { // a []string always marshals
		return "[]"
	}
	return string(b)
}

// affected finishes a compare-and-set update: the wrapped error when it
// failed, none (ErrStale, a not-found sentinel) when it matched no row.
func affected(res sql.Result, err error, none error, format string, args ...any) error {
	if err != nil {
		return fmt.Errorf(format+": %w", append(args, err)...)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return none
	}
	return nil
}
