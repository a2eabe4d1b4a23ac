package persistence_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/persistence/pgtest"
)

func TestLifecycleTable(t *testing.T) {
	t.Parallel()
	rules := persistence.Lifecycle()
	if len(rules) != 11 {
		t.Fatalf("%d rules, want the 11 of LIFECYCLE.md", len(rules))
	}
	seen := map[persistence.Transition]bool{}
	for _, r := range rules {
		if seen[r.Transition] {
			t.Errorf("%s twice", r.Transition)
		}
		seen[r.Transition] = true
		for _, from := range r.From {
			if persistence.IsTerminal(from) {
				t.Errorf("%s leaves the terminal status %s", r.Transition, from)
			}
		}
	}
	cases := []struct {
		t        persistence.Transition
		from, to persistence.Status
		ok       bool
	}{
		{persistence.TCreate, "", persistence.StatusQueued, true},
		{persistence.TStart, persistence.StatusQueued, persistence.StatusRunning, true},
		{persistence.TStart, persistence.StatusRunning, persistence.StatusRunning, false},
		{persistence.TFinish, persistence.StatusRunning, persistence.StatusPassed, true},
		{persistence.TFinish, persistence.StatusRunning, persistence.StatusCancelled, false},
		{persistence.TFinish, persistence.StatusQueued, persistence.StatusPassed, false},
		{persistence.TCancel, persistence.StatusRunning, persistence.StatusCancelled, true},
		{persistence.THandBack, persistence.StatusRunning, persistence.StatusQueued, true},
		{persistence.TGiveUp, persistence.StatusQueued, persistence.StatusFailed, true},
		{persistence.TGiveUp, persistence.StatusPassed, persistence.StatusFailed, false},
		{persistence.TCancelQueued, persistence.StatusRunning, persistence.StatusCancelled, false},
	}
	for _, c := range cases {
		if got := persistence.Allows(c.t, c.from, c.to); got != c.ok {
			t.Errorf("Allows(%s, %q, %q) = %v, want %v", c.t, c.from, c.to, got, c.ok)
		}
	}
}

// A hand-back is not a failed delivery: a run handed back more times than
// maxDeliveries still starts (hole 2 of the lifecycle issue).
func TestHandBackDoesNotCountAsDelivery(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.New(t)
	ctx := context.Background()
	runs := &persistence.Runs{DB: db, MaxDeliveries: 3}
	run := seedRun(t, db, 1)
	for i := 0; i < 5; i++ {
		r, err := runs.Start(ctx, run.ID, i, persistence.Owner{Worker: "w"}, time.Minute)
		if err != nil {
			t.Fatalf("start %d after %d hand-backs: %v", i+1, i, err)
		}
		if r.Deliveries != 0 {
			t.Fatalf("deliveries = %d after hand-backs", r.Deliveries)
		}
		if err := runs.HandBack(ctx, run.ID, r.Attempt); err != nil {
			t.Fatal(err)
		}
	}
}

// Take-overs count deliveries; at the maximum the run is given up, and a
// cancel of a run whose owner is gone ends it (holes 1 and 2).
func TestTakeOverGiveUpAndCancelOrphan(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.New(t)
	ctx := context.Background()
	runs := &persistence.Runs{DB: db, MaxDeliveries: 3}
	run := seedRun(t, db, 2)
	r, err := runs.Start(ctx, run.ID, 0, persistence.Owner{Worker: "w1"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		expireLease(t, db, run.ID)
		if r, err = runs.TakeOver(ctx, run.ID, r.Attempt, persistence.Owner{Worker: "w2"}, time.Minute); err != nil {
			t.Fatalf("take-over %d: %v", i+1, err)
		}
	}
	if r.Deliveries != 2 || r.Attempt != 3 {
		t.Fatalf("after two take-overs: deliveries %d attempt %d", r.Deliveries, r.Attempt)
	}
	expireLease(t, db, run.ID)
	if _, err := runs.TakeOver(ctx, run.ID, r.Attempt, persistence.Owner{Worker: "w3"}, time.Minute); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("third take-over: %v, want ErrStale (deliveries spent)", err)
	}
	if err := runs.GiveUp(ctx, run.ID, persistence.StatusRunning, r.Attempt, "worker lost"); err != nil {
		t.Fatal(err)
	}
	got, _ := runs.Get(ctx, run.ID)
	if got.Status != persistence.StatusFailed || got.Deliveries != 3 || got.ActionsSkipped != 2 {
		t.Fatalf("given up: %s deliveries %d skipped %d", got.Status, got.Deliveries, got.ActionsSkipped)
	}

	orphan := seedRun(t, db, 2)
	o, err := runs.Start(ctx, orphan.ID, 0, persistence.Owner{Worker: "w1"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.NewUpdate().Model((*persistence.Run)(nil)).Set("cancel_requested_at = now()").Where("id = ?", orphan.ID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := runs.CancelOrphan(ctx, orphan.ID, o.Attempt); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("cancel-orphan while the owner's lease lasts: %v, want ErrStale", err)
	}
	expireLease(t, db, orphan.ID)
	if _, err := runs.TakeOver(ctx, orphan.ID, o.Attempt, persistence.Owner{Worker: "w2"}, time.Minute); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("take-over of a run with a cancel request: %v, want ErrStale", err)
	}
	if err := runs.CancelOrphan(ctx, orphan.ID, o.Attempt); err != nil {
		t.Fatal(err)
	}
	got, _ = runs.Get(ctx, orphan.ID)
	if got.Status != persistence.StatusCancelled || got.ActionsSkipped != 2 {
		t.Fatalf("orphan: %s skipped %d", got.Status, got.ActionsSkipped)
	}
}

// Finish writes the rows that were never written and settles the rest: a
// finished run has no pending row (hole 7).
func TestFinishSettlesEveryRow(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.New(t)
	ctx := context.Background()
	runs := &persistence.Runs{DB: db}
	run := seedRun(t, db, 3)
	r, err := runs.Start(ctx, run.ID, 0, persistence.Owner{Worker: "w"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := runs.SaveAction(ctx, run.ID, r.Attempt, &persistence.RunAction{ActionIndex: 0, Status: persistence.ActionSuccess}); err != nil {
		t.Fatal(err)
	}
	err = runs.Finish(ctx, run.ID, r.Attempt, persistence.Outcome{Status: persistence.StatusPassed, CompletedAt: time.Now(),
		Rows: []persistence.RunAction{{ActionIndex: 1, ActionID: "act_002", Status: persistence.ActionSuccess}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := actionStatuses(t, db, run.ID); got[0] != "success" || got[1] != "success" || got[2] != "skipped" {
		t.Fatalf("rows = %v, want success, success, skipped", got)
	}
	got, _ := runs.Get(ctx, run.ID)
	if got.ActionsExecuted != 2 || got.ActionsSkipped != 1 || got.ActionsTotal != 3 {
		t.Fatalf("counters: %d executed %d skipped of %d", got.ActionsExecuted, got.ActionsSkipped, got.ActionsTotal)
	}
}

// A stale attempt's row write that waits behind the next attempt's reset
// lands nowhere: the row's attempt is compared under its lock (hole 8).
func TestStaleRowWriteAfterResetLandsNowhere(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.New(t)
	ctx := context.Background()
	runs := &persistence.Runs{DB: db}
	run := seedRun(t, db, 1)
	r1, err := runs.Start(ctx, run.ID, 0, persistence.Owner{Worker: "w1"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	expireLease(t, db, run.ID)
	// The take-over's transaction holds the run and its rows locked while
	// the old owner's write starts; release it after the write is waiting.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.NewUpdate().Model((*persistence.Run)(nil)).Set("attempt = attempt + 1, deliveries = deliveries + 1").Where("id = ?", run.ID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.NewUpdate().Model((*persistence.RunAction)(nil)).Set("attempt = ?, status = 'pending'", r1.Attempt+1).Where("run_id = ?", run.ID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		werr = runs.SaveAction(ctx, run.ID, r1.Attempt, &persistence.RunAction{ActionIndex: 0, Status: persistence.ActionFailed})
	}()
	// Wait until the write blocks on the lock.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := db.NewRaw("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE \"run_actions\"%'").Scan(ctx, &waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stale write never waited on the row lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !errors.Is(werr, persistence.ErrStale) {
		t.Fatalf("stale write: %v, want ErrStale", werr)
	}
	if got := actionStatuses(t, db, run.ID); got[0] != persistence.ActionPending {
		t.Fatalf("row after the stale write = %s, want pending", got[0])
	}
}
