package persistence_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/persistence/pgtest"
)

// seedRun writes a user, a recording and a queued run with n pending actions.
func seedRun(t *testing.T, db *bun.DB, n int) *persistence.Run {
	t.Helper()
	ctx := context.Background()
	u := &persistence.User{Email: uuid.NewString() + "@example.com"}
	if _, err := db.NewInsert().Model(u).Returning("*").Exec(ctx); err != nil {
		t.Fatal(err)
	}
	rec := &persistence.Recording{UserID: u.ID, OriginalID: "rec_1", Name: "r", URL: "http://x/", Data: []byte(`{}`), Tags: []string{}, Variables: []string{}}
	if _, err := db.NewInsert().Model(rec).Returning("*").Exec(ctx); err != nil {
		t.Fatal(err)
	}
	run := &persistence.Run{UserID: u.ID, RecordingID: rec.ID, RecordingName: "r", RecordingURL: "http://x/",
		Status: persistence.StatusQueued, Browser: "chromium", Options: []byte(`{}`), Variables: map[string]string{},
		ScreenshotPaths: []string{}, TriggeredBy: "api", Timeout: 30000, ScreenshotMode: "on-failure", TimingMode: "instant", SpeedMultiplier: 1}
	if _, err := db.NewInsert().Model(run).Returning("*").Exec(ctx); err != nil {
		t.Fatal(err)
	}
	refs := make([]persistence.ActionRef, n)
	for i := range refs {
		refs[i] = persistence.ActionRef{ID: "act_00" + string(rune('1'+i)), Type: "click"}
	}
	rows := make([]persistence.RunAction, n)
	for i, r := range refs {
		rows[i] = persistence.RunAction{RunID: run.ID, ActionID: r.ID, ActionIndex: i, ActionType: r.Type, Status: persistence.ActionPending, Warnings: []string{}}
	}
	if n > 0 {
		if _, err := db.NewInsert().Model(&rows).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return run
}

// expireLease ends a running run's lease now, as if its owner died.
func expireLease(t *testing.T, db *bun.DB, id uuid.UUID) {
	t.Helper()
	if _, err := db.NewUpdate().Model((*persistence.Run)(nil)).Set("lease_expires_at = now() - interval '1 second'").Where("id = ?", id).Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func actionStatuses(t *testing.T, db *bun.DB, id uuid.UUID) []string {
	t.Helper()
	var rows []persistence.RunAction
	if err := db.NewSelect().Model(&rows).Where("run_id = ?", id).Order("action_index").Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = string(r.Status)
	}
	return out
}

func TestRunTransitionsAreCompareAndSet(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.New(t)
	ctx := context.Background()
	runs := &persistence.Runs{DB: db}
	run := seedRun(t, db, 3)
	owner := persistence.Owner{Worker: "w1", ActorAddress: "nonhost", ActorID: "a1"}

	started, err := runs.Start(ctx, run.ID, 0, owner, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if started.Status != persistence.StatusRunning || started.Attempt != 1 || started.WorkerNode != "w1" {
		t.Fatalf("started = %s attempt %d on %q", started.Status, started.Attempt, started.WorkerNode)
	}
	// A second coordinator that read the same queued row loses the race.
	if _, err := runs.Start(ctx, run.ID, 0, owner, time.Second); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("second start: %v, want ErrStale", err)
	}
	ok := &persistence.RunAction{ActionIndex: 0, ActionID: "act_001", ActionType: "click", Status: persistence.ActionSuccess}
	if err := runs.SaveAction(ctx, run.ID, 1, ok); err != nil {
		t.Fatal(err)
	}
	// A stale attempt cannot write rows.
	if err := runs.SaveAction(ctx, run.ID, 2, ok); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("save with a wrong attempt: %v, want ErrStale", err)
	}

	// Reclaim: another worker takes over attempt 1 as attempt 2; rows go back to pending.
	owner2 := persistence.Owner{Worker: "w2", ActorAddress: "nonhost", ActorID: "a2"}
	// Not while its lease lasts (by the database's clock).
	if _, err := runs.TakeOver(ctx, run.ID, 1, owner2, 30*time.Second); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("take-over of a live lease: %v, want ErrStale", err)
	}
	expireLease(t, db, run.ID)
	second, err := runs.TakeOver(ctx, run.ID, 1, owner2, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if second.Attempt != 2 || second.Deliveries != 1 {
		t.Fatalf("reclaimed attempt = %d, want 2", second.Attempt)
	}
	if got := actionStatuses(t, db, run.ID); len(got) != 3 || got[0] != persistence.ActionPending {
		t.Fatalf("actions after reclaim = %v, want 3 pending", got)
	}
	// The first owner can no longer renew, write or finish.
	if _, err := runs.RenewLease(ctx, run.ID, 1, time.Minute); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("renew by the old owner: %v, want ErrStale", err)
	}
	if err := runs.Finish(ctx, run.ID, 1, persistence.Outcome{Status: persistence.StatusPassed, CompletedAt: time.Now()}); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("finish by the old owner: %v, want ErrStale", err)
	}
	for i := 0; i < 3; i++ {
		a := &persistence.RunAction{ActionIndex: i, Status: persistence.ActionSuccess}
		if err := runs.SaveAction(ctx, run.ID, 2, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := runs.Finish(ctx, run.ID, 2, persistence.Outcome{Status: persistence.StatusPassed, ActionsTotal: 3, ActionsExecuted: 3, CompletedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// A finished run never changes again.
	if err := runs.Finish(ctx, run.ID, 2, persistence.Outcome{Status: persistence.StatusFailed, CompletedAt: time.Now()}); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("second finish: %v, want ErrStale", err)
	}
	if err := runs.HandBack(ctx, run.ID, 2); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("requeue of a finished run: %v, want ErrStale", err)
	}
	final, err := runs.Get(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if final.Status != persistence.StatusPassed || final.Attempt != 2 || final.WorkerNode != "w2" || final.LeaseExpiresAt != nil {
		t.Fatalf("final = %s attempt %d on %q lease %v", final.Status, final.Attempt, final.WorkerNode, final.LeaseExpiresAt)
	}
	var n int
	if err := db.NewSelect().Model((*persistence.RunAction)(nil)).Where("run_id = ?", run.ID).ColumnExpr("count(*)").Scan(ctx, &n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("%d action rows after two attempts, want 3", n)
	}
}

func TestLeaseRenewalSeesCancelAndRequeueHandsBack(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.New(t)
	ctx := context.Background()
	runs := &persistence.Runs{DB: db}
	run := seedRun(t, db, 2)
	if _, err := runs.Start(ctx, run.ID, 0, persistence.Owner{Worker: "w"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	lease, err := runs.RenewLease(ctx, run.ID, 1, time.Minute)
	if err != nil || lease.CancelRequested {
		t.Fatalf("renew = %+v, %v; want no cancel", lease, err)
	}
	if _, err := db.NewUpdate().Model((*persistence.Run)(nil)).Set("cancel_requested_at = now()").Where("id = ?", run.ID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if lease, err = runs.RenewLease(ctx, run.ID, 1, time.Minute); err != nil || !lease.CancelRequested {
		t.Fatalf("renew after cancel request = %+v, %v; want CancelRequested", lease, err)
	}
	if err := runs.Cancel(ctx, run.ID, 1); err != nil {
		t.Fatal(err)
	}
	got, _ := runs.Get(ctx, run.ID)
	if got.Status != persistence.StatusCancelled || got.ActionsSkipped != 2 {
		t.Fatalf("cancelled run = %s, %d skipped", got.Status, got.ActionsSkipped)
	}

	other := seedRun(t, db, 1)
	if _, err := runs.Start(ctx, other.ID, 0, persistence.Owner{Worker: "w"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := runs.HandBack(ctx, other.ID, 1); err != nil {
		t.Fatal(err)
	}
	back, _ := runs.Get(ctx, other.ID)
	if back.Status != persistence.StatusQueued || back.Attempt != 1 || back.WorkerNode != "" {
		t.Fatalf("handed-back run = %s attempt %d on %q", back.Status, back.Attempt, back.WorkerNode)
	}
	// The next worker starts it as attempt 2.
	if r, err := runs.Start(ctx, other.ID, 1, persistence.Owner{Worker: "w2"}, time.Minute); err != nil || r.Attempt != 2 || r.Deliveries != 0 {
		t.Fatalf("restart after hand-back: %v attempt %v", err, r)
	}
	// Cancel is refused for a queued run that a cancel request already reached.
	third := seedRun(t, db, 1)
	if _, err := db.NewUpdate().Model((*persistence.Run)(nil)).Set("cancel_requested_at = now()").Where("id = ?", third.ID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := runs.Start(ctx, third.ID, 0, persistence.Owner{Worker: "w"}, time.Minute); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("start of a run with a cancel request: %v, want ErrStale", err)
	}
	if err := runs.CancelQueued(ctx, third.ID); err != nil {
		t.Fatal(err)
	}
}

func TestMigrateDownAndUpAgain(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.New(t)
	ctx := context.Background()
	if err := persistence.MigrateDown(ctx, db, io.Discard); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.NewRaw("SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'").Scan(ctx, &n); err != nil || n != 0 {
		t.Fatalf("runs table after down: %d, %v", n, err)
	}
	if err := persistence.MigrateUp(ctx, db, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := db.NewRaw("SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'").Scan(ctx, &n); err != nil || n != 1 {
		t.Fatalf("runs table after up: %d, %v", n, err)
	}
}

// A take-over from an owner that left the cluster needs no expired lease,
// only that the dead owner still holds the attempt; it fences that owner
// like any take-over.
func TestTakeOverFromADeadOwner(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.New(t)
	ctx := context.Background()
	runs := &persistence.Runs{DB: db}
	lease := 30 * time.Second
	dead := persistence.Owner{Worker: "w-dead", ActorAddress: "a", ActorID: "x"}
	survivor := persistence.Owner{Worker: "w-live", ActorAddress: "b", ActorID: "y"}

	run := seedRun(t, db, 2)
	started, err := runs.Start(ctx, run.ID, 0, dead, lease)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		from    string
		by      persistence.Owner
		attempt int
		wantErr bool
	}{
		{"not from a worker that does not own it", "w-other", survivor, started.Attempt, true},
		{"not from oneself", "w-live", survivor, started.Attempt, true},
		{"not with a stale attempt", "w-dead", survivor, started.Attempt - 1, true},
		{"from the dead owner, lease still valid", "w-dead", survivor, started.Attempt, false},
		{"only once", "w-dead", survivor, started.Attempt, true},
	}
	for _, tc := range tests {
		got, err := runs.TakeOverFrom(ctx, run.ID, tc.attempt, tc.from, tc.by, lease)
		if (err != nil) != tc.wantErr {
			t.Fatalf("%s: err = %v, want error %v", tc.name, err, tc.wantErr)
		}
		if err == nil && (got.Attempt != started.Attempt+1 || got.WorkerNode != "w-live" || got.Deliveries != started.Deliveries+1) {
			t.Fatalf("%s: took over as %+v", tc.name, got)
		}
	}
	// The frozen owner comes back: its renewal and writes are fenced.
	if _, err := runs.RenewLease(ctx, run.ID, started.Attempt, lease); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("dead owner's renewal = %v, want ErrStale", err)
	}
	if err := runs.Fail(ctx, run.ID, started.Attempt, "late"); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("dead owner's finish = %v, want ErrStale", err)
	}
}
