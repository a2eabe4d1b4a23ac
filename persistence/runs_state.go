package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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
	// MaxDeliveries is how many failed attempts a run may have before it
	// fails with "worker lost" (default DefaultMaxDeliveries).
	MaxDeliveries int
}

// DefaultMaxDeliveries is how many failed attempts a run gets.
const DefaultMaxDeliveries = 3

func (s *Runs) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Get loads a run by id, deleted or not (the worker must see a run deleted
// while running to cancel it), with LeaseExpired read from the database's
// clock.
func (s *Runs) Get(ctx context.Context, id uuid.UUID) (*Run, error) {
	run := new(Run)
	err := s.DB.NewSelect().Model(run).
		ColumnExpr("run.*").
		ColumnExpr("(run.lease_expires_at IS NULL OR run.lease_expires_at < now()) AS lease_expired").
		Where("run.id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrRunNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load run %s: %w", id, err)
	}
	return run, nil
}

// RecordingData returns the recorder JSON a run replays: the version of its
// recording it was created with, even when the recording was changed or
// soft-deleted since.
func (s *Runs) RecordingData(ctx context.Context, run *Run) ([]byte, error) {
	var data []byte
	err := s.DB.NewSelect().Model((*RecordingVersion)(nil)).Column("data").
		Where("recording_id = ?", run.RecordingID).
		Where("version = ?", run.RecordingVersion).
		Scan(ctx, &data)
	if err != nil {
		return nil, fmt.Errorf("load recording %s version %d: %w", run.RecordingID, run.RecordingVersion, err)
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

// Start takes a queued run (transition 2): attempt+1, owned by o, leased for
// lease by the database's clock, rows reset. A run whose cancel was
// requested, that was deleted, or whose deliveries are spent is not started
// (ErrStale).
func (s *Runs) Start(ctx context.Context, id uuid.UUID, attempt int, o Owner, lease time.Duration) (*Run, error) {
	return s.begin(ctx, TStart, id, StatusQueued, attempt, o, lease, "")
}

// TakeOver starts the next attempt of a running run whose owner is gone
// (transition 4): its lease expired by the database's clock. It counts a
// delivery. ErrStale when the owner renewed, another worker took it first,
// a cancel was requested (cancel it with CancelOrphan) or deliveries+1
// would reach the maximum (give it up with GiveUp).
func (s *Runs) TakeOver(ctx context.Context, id uuid.UUID, attempt int, o Owner, lease time.Duration) (*Run, error) {
	return s.begin(ctx, TTakeOver, id, StatusRunning, attempt, o, lease, "")
}

// TakeOverFrom is transition 4 taken because the owner left the cluster
// (killed or cut off) rather than because its lease ran out: the guard is
// that the attempt is still owned by deadWorker, so the survivors need not
// wait a whole lease. Fencing is unchanged: the dead worker's attempt is
// no longer the run's, so if it was only frozen and comes back, its next
// renewal and every write of it find ErrStale.
func (s *Runs) TakeOverFrom(ctx context.Context, id uuid.UUID, attempt int, deadWorker string, o Owner, lease time.Duration) (*Run, error) {
	if deadWorker == "" || deadWorker == o.Worker {
		return nil, fmt.Errorf("take over run %s from %q: not another worker", id, deadWorker)
	}
	return s.begin(ctx, TTakeOver, id, StatusRunning, attempt, o, lease, deadWorker)
}

// CrashRestart starts the next attempt of a run on the node that owns it,
// after its browser crashed (transition 11). It counts a delivery.
func (s *Runs) CrashRestart(ctx context.Context, id uuid.UUID, attempt int, o Owner, lease time.Duration) (*Run, error) {
	return s.begin(ctx, TCrashRestart, id, StatusRunning, attempt, o, lease, "")
}

func (s *Runs) maxDeliveries() int {
	if s.MaxDeliveries > 0 {
		return s.MaxDeliveries
	}
	return DefaultMaxDeliveries
}

// begin is the one write of transitions 2, 4 and 11. A take-over with
// deadWorker set is guarded on that owner instead of an expired lease.
//
// It is one statement: the compare-and-set of the run and, only when it
// took effect, the reset of the run's rows to the new attempt (a
// data-modifying WITH that joins the updated run), so the two stay one
// atomic change without a transaction's BEGIN and COMMIT round trips.
func (s *Runs) begin(ctx context.Context, t Transition, id uuid.UUID, from Status, attempt int, o Owner, lease time.Duration, deadWorker string) (*Run, error) {
	if err := mustAllow(t, from, StatusRunning); err != nil {
		return nil, err
	}
	run := new(Run)
	now := s.now()
	q := s.DB.NewUpdate().Model(run).
		Set("status = ?", StatusRunning).
		Set("attempt = attempt + 1").
		Set("worker_node = ?", o.Worker).
		Set("actor_address = ?", o.ActorAddress).
		Set("actor_id = ?", o.ActorID).
		Set("lease_expires_at = now() + make_interval(secs => ?)", lease.Seconds()).
		Set("started_at = ?", now).
		Set("completed_at = NULL").
		Set("actions_executed = 0, actions_failed = 0, actions_skipped = 0").
		Set("error_message = NULL, error_action_id = NULL").
		Set("updated_at = ?", now).
		Where("id = ?", id).
		Where("status = ?", from).
		Where("attempt = ?", attempt).
		Where("cancel_requested_at IS NULL").
		Where("deleted_at IS NULL").
		Returning("*")
	switch t {
	case TStart:
		q = q.Where("deliveries < ?", s.maxDeliveries())
	case TTakeOver:
		q = q.Set("deliveries = deliveries + 1").
			Where("deliveries + 1 < ?", s.maxDeliveries())
		if deadWorker != "" {
			q = q.Where("worker_node = ?", deadWorker)
		} else {
			q = q.Where("(lease_expires_at IS NULL OR lease_expires_at < now())")
		}
	case TCrashRestart:
		q = q.Set("deliveries = deliveries + 1").
			Where("deliveries + 1 < ?", s.maxDeliveries()).
			Where("worker_node = ?", o.Worker)
	}
	reset := s.DB.NewUpdate().Model((*RunAction)(nil)).
		TableExpr("began").
		Set("attempt = began.attempt").
		Set("status = ?", ActionPending).
		Set("started_at = NULL, completed_at = NULL, duration_ms = NULL").
		Set("selector_used = NULL, error_message = NULL, reason = NULL, screenshot_path = NULL").
		Set("warnings = '[]'").
		Set("updated_at = ?", now).
		Where("run_action.run_id = began.id")
	err := s.DB.NewSelect().
		With("began", q).
		With("reset", reset).
		Table("began").
		ColumnExpr("*").
		Scan(ctx, run)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrStale
	}
	if err != nil {
		return nil, fmt.Errorf("%s run %s: %w", t, id, err)
	}
	return run, nil
}

// ActionRef names one action of a recording, in replay order.
type ActionRef struct {
	ID   string
	Type string
}

// SaveAction writes the result of one action of attempt. It does nothing
// and returns ErrStale when the run is no longer running at that attempt.
// The row's own attempt is compared too, under the row's lock, so a stale
// write that waited behind the next attempt's reset lands nowhere.
func (s *Runs) SaveAction(ctx context.Context, id uuid.UUID, attempt int, a *RunAction) error {
	res, err := saveAction(ctx, s.DB, id, attempt, a, s.now())
	if err := affected(res, err, ErrStale, "save action %d of run %s", a.ActionIndex, id); err != nil {
		return err
	}
	return nil
}

func saveAction(ctx context.Context, db bun.IDB, id uuid.UUID, attempt int, a *RunAction, now time.Time) (sql.Result, error) {
	if a.Warnings == nil {
		a.Warnings = []string{}
	}
	a.RunID, a.Attempt = id, attempt
	return db.NewUpdate().Model(a).
		Column("status", "started_at", "completed_at", "duration_ms", "selector_used", "error_message", "reason", "warnings", "screenshot_path", "metadata").
		Set("updated_at = ?", now).
		Where("run_id = ?", id).
		Where("action_index = ?", a.ActionIndex).
		Where("attempt = ?", attempt).
		Where("EXISTS (SELECT 1 FROM runs WHERE runs.id = ? AND runs.status = ? AND runs.attempt = ?)", id, StatusRunning, attempt).
		Exec(ctx)
}

// Outcome is the final result of an attempt.
type Outcome struct {
	Status          Status
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
	// Artifacts, when not nil, are recorded on the run with
	// ArtifactWarnings, and each action row is pointed at its screenshot's
	// key (VideoPath and Screenshots are then keys too).
	Artifacts        []Artifact
	ArtifactWarnings []string
	// Rows are action results not yet written (their own write failed or
	// never happened); they are written with the outcome.
	Rows []RunAction
	// Unsettled is the reason given to rows still pending after Rows are
	// written: they end skipped with it, so no finished run keeps a
	// pending row.
	Unsettled string
}

// Finish ends the owner's attempt with its result: passed or failed
// (transition 5), or cancelled with partial results (transition 6). In one
// transaction: the run (compare-and-set), the unwritten rows, every row
// still pending settled skipped, and the counters from the rows. ErrStale
// means the attempt is no longer the run's current one (or it finished).
func (s *Runs) Finish(ctx context.Context, id uuid.UUID, attempt int, o Outcome) error {
	_, err := s.FinishRun(ctx, id, attempt, o)
	return err
}

// FinishRun is Finish that also returns the finished run as written, when
// the write could return it without another statement (every row written
// during the replay, the common case); otherwise the run is nil.
func (s *Runs) FinishRun(ctx context.Context, id uuid.UUID, attempt int, o Outcome) (*Run, error) {
	t := TFinish
	if o.Status == StatusCancelled {
		t = TCancel
	}
	if err := mustAllow(t, StatusRunning, o.Status); err != nil {
		return nil, err
	}
	if o.Screenshots == nil {
		o.Screenshots = []string{}
	}
	if o.Unsettled == "" {
		o.Unsettled = "no result recorded"
	}
	now := s.now()
	if len(o.Rows) == 0 && !screenshotKeys(o) {
		return s.finishAtOnce(ctx, t, id, attempt, o, now)
	}
	return nil, s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		q := tx.NewUpdate().Model((*Run)(nil)).
			Set("status = ?", o.Status).
			Set("duration_ms = ?", o.DurationMs).
			Set("completed_at = ?", o.CompletedAt.UTC()).
			Set("error_message = ?", nullString(o.ErrorMessage)).
			Set("error_action_id = ?", nullString(o.ErrorActionID)).
			Set("video_path = ?", nullString(o.VideoPath)).
			Set("screenshot_paths = ?::jsonb", mustJSON(o.Screenshots)).
			Set("lease_expires_at = NULL").
			Set("updated_at = ?", now).
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
		for i := range o.Rows {
			// The run row is locked by this transaction: these cannot race
			// a new attempt. Status is no longer running, so write directly.
			r := &o.Rows[i]
			if r.Warnings == nil {
				r.Warnings = []string{}
			}
			r.RunID, r.Attempt = id, attempt
			_, err := tx.NewUpdate().Model(r).
				Column("status", "started_at", "completed_at", "duration_ms", "selector_used", "error_message", "reason", "warnings", "screenshot_path", "metadata").
				Set("updated_at = ?", now).
				Where("run_id = ?", id).
				Where("action_index = ?", r.ActionIndex).
				Where("attempt = ?", attempt).
				Exec(ctx)
			if err != nil {
				return fmt.Errorf("write action %d of run %s: %w", r.ActionIndex, id, err)
			}
		}
		if err := writeArtifacts(ctx, tx, id, o, now); err != nil {
			return err
		}
		return settleRows(ctx, tx, id, o.Unsettled, now)
	})
}

// screenshotKeys reports whether finishing o rewrites rows' screenshot
// paths (writeArtifacts).
func screenshotKeys(o Outcome) bool {
	for _, a := range o.Artifacts {
		if a.Kind == ArtifactScreenshot && a.ActionIndex != nil {
			return true
		}
	}
	return false
}

// finishAtOnce is Finish when every row was written during the replay (the
// common case): the compare-and-set of the run with its counters and
// artifacts, and the settling of its pending rows only when that took
// effect, in one statement instead of a five-statement transaction. The
// counters come from the rows as they were, pending ones counted skipped,
// which is what they become.
func (s *Runs) finishAtOnce(ctx context.Context, t Transition, id uuid.UUID, attempt int, o Outcome, now time.Time) (*Run, error) {
	set := []string{"status = ?", "duration_ms = ?", "completed_at = ?", "error_message = ?", "error_action_id = ?",
		"video_path = ?", "screenshot_paths = ?::jsonb", "lease_expires_at = NULL", "updated_at = ?",
		"actions_total = c.total", "actions_executed = c.executed", "actions_failed = c.failed", "actions_skipped = c.skipped"}
	args := []any{o.Status, o.DurationMs, o.CompletedAt.UTC(), nullString(o.ErrorMessage), nullString(o.ErrorActionID),
		nullString(o.VideoPath), mustJSON(o.Screenshots), now}
	if o.StartedAt != nil {
		set = append(set, "started_at = ?")
		args = append(args, o.StartedAt.UTC())
	}
	if o.Artifacts != nil {
		arts, err := json.Marshal(o.Artifacts)
		if err != nil {
			return nil, fmt.Errorf("encode artifacts of run %s: %w", id, err)
		}
		warnings := o.ArtifactWarnings
		if warnings == nil {
			warnings = []string{}
		}
		set = append(set, "artifacts = ?::jsonb", "artifact_warnings = ?::jsonb")
		args = append(args, string(arts), mustJSON(warnings))
	}
	args = append(args, id, id, StatusRunning, attempt, ActionSkipped, o.Unsettled, now, ActionPending)
	run := new(Run)
	err := s.DB.NewRaw(`WITH fin AS (
			UPDATE runs SET `+strings.Join(set, ", ")+`
			FROM (SELECT count(*) AS total,
				count(*) FILTER (WHERE status IN ('success','failed','timeout')) AS executed,
				count(*) FILTER (WHERE status IN ('failed','timeout')) AS failed,
				count(*) FILTER (WHERE status IN ('skipped','pending')) AS skipped
				FROM run_actions WHERE run_id = ?) c
			WHERE runs.id = ? AND runs.status = ? AND runs.attempt = ?
			RETURNING runs.*),
		settle AS (UPDATE run_actions SET status = ?, reason = ?, updated_at = ?
			WHERE run_id IN (SELECT id FROM fin) AND status = ?)
		SELECT * FROM fin`, args...).Scan(ctx, run)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrStale
	}
	if err != nil {
		return nil, fmt.Errorf("%s run %s: %w", t, id, err)
	}
	return run, nil
}

// settleRows marks every pending row of run id skipped with reason and sets
// the run's counters from its rows, so a finished run reads consistently.
func settleRows(ctx context.Context, tx bun.Tx, id uuid.UUID, reason string, now time.Time) error {
	_, err := tx.NewUpdate().Model((*RunAction)(nil)).
		Set("status = ?", ActionSkipped).
		Set("reason = ?", reason).
		Set("updated_at = ?", now).
		Where("run_id = ?", id).
		Where("status = ?", ActionPending).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("skip actions of run %s: %w", id, err)
	}
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
}

// Lease is what a lease renewal learns about its run.
type Lease struct {
	CancelRequested bool
}

// RenewLease extends the lease of a running attempt to lease from now by
// the database's clock (transition 3) and reports whether a cancel was
// requested meanwhile (the fallback when the cancel message was missed).
// ErrStale means the attempt lost the run.
func (s *Runs) RenewLease(ctx context.Context, id uuid.UUID, attempt int, lease time.Duration) (Lease, error) {
	var cancelAt *time.Time
	var deletedAt *time.Time
	err := s.DB.NewUpdate().Model((*Run)(nil)).
		Set("lease_expires_at = now() + make_interval(secs => ?)", lease.Seconds()).
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

// HandBack returns a running attempt to the queue (transition 9, graceful
// shutdown): the attempt is kept for fencing and deliveries do not change.
func (s *Runs) HandBack(ctx context.Context, id uuid.UUID, attempt int) error {
	if err := mustAllow(THandBack, StatusRunning, StatusQueued); err != nil {
		return err
	}
	res, err := s.DB.NewUpdate().Model((*Run)(nil)).
		Set("status = ?", StatusQueued).
		Set("worker_node = '', actor_address = '', actor_id = ''").
		Set("lease_expires_at = NULL").
		Set("updated_at = ?", s.now()).
		Where("id = ?", id).
		Where("status = ?", StatusRunning).
		Where("attempt = ?", attempt).
		Exec(ctx)
	if err := affected(res, err, ErrStale, "hand back run %s", id); err != nil {
		return err
	}
	return nil
}

// Fail ends the owner's running attempt as failed with msg when it cannot
// be executed at all (bad recording, crash budget spent): transition 5
// with no results, every row settled skipped with msg.
func (s *Runs) Fail(ctx context.Context, id uuid.UUID, attempt int, msg string) error {
	return endUnfinished(ctx, s.DB, unfinished{t: TFinish, id: id, from: StatusRunning, attempt: &attempt,
		status: StatusFailed, msg: msg, reason: msg, now: s.now()})
}

// Cancel ends the owner's running attempt as cancelled before it produced
// results (transition 6), its rows skipped with reason "cancelled".
func (s *Runs) Cancel(ctx context.Context, id uuid.UUID, attempt int) error {
	return endUnfinished(ctx, s.DB, unfinished{t: TCancel, id: id, from: StatusRunning, attempt: &attempt,
		status: StatusCancelled, reason: "cancelled", now: s.now()})
}

// CancelOrphan ends as cancelled a running attempt whose cancel was
// requested (or that was deleted) and whose owner is gone: its lease ended
// by the database's clock (transition 7).
func (s *Runs) CancelOrphan(ctx context.Context, id uuid.UUID, attempt int) error {
	return endUnfinished(ctx, s.DB, unfinished{t: TCancelOrphan, id: id, from: StatusRunning, attempt: &attempt,
		status: StatusCancelled, reason: "cancelled", now: s.now(),
		where: []string{"(cancel_requested_at IS NOT NULL OR deleted_at IS NOT NULL)", "(lease_expires_at IS NULL OR lease_expires_at < now())"}})
}

// CancelOrphanFrom is transition 7 taken because the owner left the
// cluster: guarded on the attempt still being deadWorker's instead of an
// expired lease, as TakeOverFrom.
func (s *Runs) CancelOrphanFrom(ctx context.Context, id uuid.UUID, attempt int, deadWorker string) error {
	if deadWorker == "" {
		return fmt.Errorf("cancel-orphan run %s: no departed owner named", id)
	}
	return endUnfinished(ctx, s.DB, unfinished{t: TCancelOrphan, id: id, from: StatusRunning, attempt: &attempt,
		status: StatusCancelled, reason: "cancelled", now: s.now(),
		where: []string{"(cancel_requested_at IS NOT NULL OR deleted_at IS NOT NULL)"}, whereArgs: map[string]any{"worker_node = ?": deadWorker}})
}

// CancelQueued ends a queued run as cancelled (transition 8).
func (s *Runs) CancelQueued(ctx context.Context, id uuid.UUID) error {
	return endUnfinished(ctx, s.DB, unfinished{t: TCancelQueued, id: id, from: StatusQueued, status: StatusCancelled, reason: "cancelled", now: s.now()})
}

// GiveUp fails a run whose deliveries are spent (transition 10) with msg.
// A running one must have lost its owner (lease expired by the database's
// clock); its dead attempt counts as a delivery.
func (s *Runs) GiveUp(ctx context.Context, id uuid.UUID, from Status, attempt int, msg string) error {
	u := unfinished{t: TGiveUp, id: id, from: from, attempt: &attempt, status: StatusFailed, msg: msg, reason: msg, now: s.now()}
	if from == StatusRunning {
		u.where = []string{"(lease_expires_at IS NULL OR lease_expires_at < now())"}
		u.set = []string{"deliveries = deliveries + 1"}
	}
	return endUnfinished(ctx, s.DB, u)
}

// GiveUpFrom is transition 10 of a running run whose owner left the
// cluster: guarded on the attempt still being deadWorker's instead of an
// expired lease; its dead attempt counts as a delivery.
func (s *Runs) GiveUpFrom(ctx context.Context, id uuid.UUID, attempt int, deadWorker, msg string) error {
	if deadWorker == "" {
		return fmt.Errorf("give-up run %s: no departed owner named", id)
	}
	return endUnfinished(ctx, s.DB, unfinished{t: TGiveUp, id: id, from: StatusRunning, attempt: &attempt, status: StatusFailed,
		msg: msg, reason: msg, now: s.now(), set: []string{"deliveries = deliveries + 1"},
		whereArgs: map[string]any{"worker_node = ?": deadWorker}})
}

// unfinished says which run endUnfinished ends, from what, and how.
type unfinished struct {
	t         Transition
	id        uuid.UUID
	user      *uuid.UUID // when set, only that user's run
	from      Status
	attempt   *int // when set, only that attempt
	status    Status
	msg       string
	reason    string // of the actions skipped
	now       time.Time
	where     []string       // further guards
	whereArgs map[string]any // further guards with one argument each
	set       []string       // further assignments
}

// endUnfinished moves a run from u.from to the terminal u.status in one
// transaction: the run row (compare-and-set), its pending actions skipped
// with u.reason, and its counters recomputed from the rows.
func endUnfinished(ctx context.Context, db bun.IDB, u unfinished) error {
	if err := mustAllow(u.t, u.from, u.status); err != nil {
		return err
	}
	id, now := u.id, u.now
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		q := tx.NewUpdate().Model((*Run)(nil)).
			Set("status = ?", u.status).
			Set("error_message = ?", nullString(u.msg)).
			Set("completed_at = ?", now).
			Set("lease_expires_at = NULL").
			Set("updated_at = ?", now).
			Where("id = ?", id).
			Where("status = ?", u.from)
		if u.status == StatusCancelled {
			q = q.Set("cancel_requested_at = COALESCE(cancel_requested_at, ?)", now)
		}
		if u.attempt != nil {
			q = q.Where("attempt = ?", *u.attempt)
		}
		if u.user != nil {
			q = q.Where("user_id = ?", *u.user)
		}
		for _, w := range u.where {
			q = q.Where(w)
		}
		for w, arg := range u.whereArgs {
			q = q.Where(w, arg)
		}
		for _, s := range u.set {
			q = q.Set(s)
		}
		res, err := q.Exec(ctx)
		if err := affected(res, err, ErrStale, "%s run %s", u.t, id); err != nil {
			return err
		}
		return settleRows(ctx, tx, id, u.reason, now)
	})
}

// Cursor pages through runs in the order of a timestamp, then id.
type Cursor struct {
	At time.Time
	ID uuid.UUID
}

// Stuck lists running runs whose lease ended by the database's clock (their
// owner is gone), after cursor c, oldest lease first.
func (s *Runs) Stuck(ctx context.Context, c Cursor, limit int) ([]Run, error) {
	var runs []Run
	err := s.DB.NewSelect().Model(&runs).
		Where("status = ?", StatusRunning).
		Where("lease_expires_at < now()").
		Where("(lease_expires_at, id) > (?, ?)", c.At, c.ID).
		OrderExpr("lease_expires_at, id").
		Limit(int64(limit)).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list stuck runs: %w", err)
	}
	return runs, nil
}

// QueuedBefore lists runs queued and unchanged for longer than age by the
// database's clock, after cursor c, oldest first.
func (s *Runs) QueuedBefore(ctx context.Context, age time.Duration, c Cursor, limit int) ([]Run, error) {
	var runs []Run
	err := s.DB.NewSelect().Model(&runs).
		Where("status = ?", StatusQueued).
		Where("updated_at < now() - make_interval(secs => ?)", age.Seconds()).
		Where("(updated_at, id) > (?, ?)", c.At, c.ID).
		OrderExpr("updated_at, id").
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

// StillAdrift reports whether run is still as a reconciler listed it: in
// the same status and attempt, dispatched by the same entry, and, when
// running, with its lease ended by the database's clock. The reconciler
// asks after it found the entry gone: a run pulled, run and acked between
// the listing and that look is no longer queued (or no longer at that
// attempt), and must not be given a fresh entry.
func (s *Runs) StillAdrift(ctx context.Context, run *Run) (bool, error) {
	q := s.DB.NewSelect().Model((*Run)(nil)).
		Where("id = ?", run.ID).
		Where("status = ?", run.Status).
		Where("attempt = ?", run.Attempt).
		Where("job_id = ?", run.JobID)
	if run.Status == StatusRunning {
		q = q.Where("lease_expires_at < now()")
	}
	ok, err := q.Exists(ctx)
	if err != nil {
		return false, fmt.Errorf("look again at run %s: %w", run.ID, err)
	}
	return ok, nil
}

// ReplaceJob records entryID as the stream entry that dispatches run id in
// place of prev: a compare-and-set on the entry, ErrStale when the run's
// entry is no longer prev (another node gave it one meanwhile). The run's
// status is not compared: the only entry that can move a run between a
// reconciler's look and this write is the new entry itself, which is then
// rightly the one recorded.
func (s *Runs) ReplaceJob(ctx context.Context, id uuid.UUID, queueName, prev, entryID string) error {
	res, err := s.DB.NewUpdate().Model((*Run)(nil)).
		Set("queue_name = ?", queueName).
		Set("job_id = ?", entryID).
		Set("updated_at = ?", s.now()).
		Where("id = ?", id).
		Where("job_id = ?", prev).
		Exec(ctx)
	return affected(res, err, ErrStale, "record job of run %s", id)
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
