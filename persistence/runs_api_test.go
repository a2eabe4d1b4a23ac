package persistence_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/persistence/pgtest"
)

// newAPIRun is a run as the API would build it, for CreateRun.
func newAPIRun(t *testing.T, db *bun.DB) (*persistence.Run, *persistence.Recording) {
	t.Helper()
	ctx := context.Background()
	u, err := persistence.EnsureUser(ctx, db, uuid.NewString()+"@example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	rec := newTestRecording(u.ID, "rec_run")
	if err := persistence.CreateRecording(ctx, db, rec); err != nil {
		t.Fatal(err)
	}
	run := &persistence.Run{UserID: u.ID, RecordingID: rec.ID, RecordingName: rec.Name, RecordingURL: rec.URL, TriggeredBy: "api"}
	if err := persistence.DefaultRunOptions().ApplyTo(run); err != nil {
		t.Fatal(err)
	}
	return run, rec
}

func enqueueOK(_ context.Context, id uuid.UUID) (string, string, error) {
	return "runs", "1-" + id.String()[:4], nil
}

var refs3 = []persistence.ActionRef{{ID: "act_001", Type: "click"}, {ID: "act_002", Type: "input"}, {ID: "act_003", Type: "submit"}}

func TestCreateRunIsAllOrNothing(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.New(t)
	ctx := context.Background()
	run, _ := newAPIRun(t, db)
	boom := errors.New("redis down")
	var enqueued uuid.UUID
	_, _, err := persistence.CreateRun(ctx, db, persistence.NewRun{Run: run, Actions: refs3, Now: time.Now(),
		Enqueue: func(ctx context.Context, id uuid.UUID) (string, string, error) {
			enqueued = id
			// The run and its rows are written before the dispatcher runs, and removed when it fails.
			return "", "", boom
		}})
	var eq *persistence.EnqueueError
	if !errors.As(err, &eq) || !errors.Is(err, boom) {
		t.Fatalf("err %v, want an EnqueueError wrapping the dispatcher's", err)
	}
	for _, model := range []any{(*persistence.Run)(nil), (*persistence.RunAction)(nil)} {
		n, err := db.NewSelect().Model(model).Count(ctx)
		if err != nil || n != 0 {
			t.Fatalf("%T: %d rows left (%v)", model, n, err)
		}
	}
	if enqueued == uuid.Nil {
		t.Fatal("dispatcher not called")
	}

	run2, _ := newAPIRun(t, db)
	got, replayed, err := persistence.CreateRun(ctx, db, persistence.NewRun{Run: run2, Actions: refs3, Now: time.Now(), Enqueue: enqueueOK})
	if err != nil || replayed {
		t.Fatal(err)
	}
	if got.Status != persistence.StatusQueued || got.ActionsTotal != 3 || got.QueueName != "runs" || got.JobID == "" {
		t.Fatalf("run %+v", got)
	}
	var stored persistence.Run
	if err := db.NewSelect().Model(&stored).Where("id = ?", got.ID).Scan(ctx); err != nil || stored.JobID != got.JobID {
		t.Fatalf("job id not stored: %q %v", stored.JobID, err)
	}
	acts, err := persistence.ListRunActions(ctx, db, got.ID)
	if err != nil || len(acts) != 3 {
		t.Fatalf("actions %v %v", acts, err)
	}
	for i, a := range acts {
		if a.ActionIndex != i || a.ActionID != refs3[i].ID || a.ActionType != refs3[i].Type || a.Status != persistence.ActionPending || a.Attempt != 0 {
			t.Fatalf("action %d: %+v", i, a)
		}
	}
}

func TestUserRunCancelIsCompareAndSet(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.New(t)
	ctx := context.Background()
	mk := func() *persistence.Run {
		run, _ := newAPIRun(t, db)
		got, _, err := persistence.CreateRun(ctx, db, persistence.NewRun{Run: run, Actions: refs3, Now: time.Now(), Enqueue: enqueueOK})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	now := time.Now().UTC()
	queued := mk()
	if err := persistence.CancelQueuedUserRun(ctx, db, uuid.New(), queued.ID, now); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("another user cancelled: %v", err)
	}
	if err := persistence.RequestUserRunCancel(ctx, db, queued.UserID, queued.ID, now); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("request on a queued run: %v", err)
	}
	if err := persistence.CancelQueuedUserRun(ctx, db, queued.UserID, queued.ID, now); err != nil {
		t.Fatal(err)
	}
	got, err := persistence.GetUserRun(ctx, db, queued.UserID, queued.ID)
	if err != nil || got.Status != persistence.StatusCancelled || got.CompletedAt == nil || got.CancelRequestedAt == nil || got.ActionsSkipped != 3 {
		t.Fatalf("cancelled: %+v %v", got, err)
	}
	if err := persistence.CancelQueuedUserRun(ctx, db, queued.UserID, queued.ID, now); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("cancelled twice: %v", err)
	}

	running := mk()
	runs := &persistence.Runs{DB: db}
	if _, err := runs.Start(ctx, running.ID, 0, persistence.Owner{Worker: "w"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := persistence.CancelQueuedUserRun(ctx, db, running.UserID, running.ID, now); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("queued-cancel of a running run: %v", err)
	}
	if err := persistence.RequestUserRunCancel(ctx, db, running.UserID, running.ID, now); err != nil {
		t.Fatal(err)
	}
	if err := persistence.RequestUserRunCancel(ctx, db, running.UserID, running.ID, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	got, _ = persistence.GetUserRun(ctx, db, running.UserID, running.ID)
	if got.Status != persistence.StatusRunning || got.CancelRequestedAt == nil || !got.CancelRequestedAt.Equal(now.Truncate(time.Microsecond)) {
		t.Fatalf("request: %+v", got)
	}
	if err := persistence.SoftDeleteUserRun(ctx, db, running.UserID, running.ID, now); err != nil {
		t.Fatal(err)
	}
	if _, err := persistence.GetUserRun(ctx, db, running.UserID, running.ID); !errors.Is(err, persistence.ErrRunNotFound) {
		t.Fatalf("deleted run read: %v", err)
	}
	if err := persistence.SoftDeleteUserRun(ctx, db, running.UserID, running.ID, now); !errors.Is(err, persistence.ErrRunNotFound) {
		t.Fatalf("deleted twice: %v", err)
	}
}
