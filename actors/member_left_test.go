package actors_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saveaction/runner/actors"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue"
)

// A run whose owner left the cluster is taken over at once, though its
// lease is still valid and the reclaim pass (every lease/2) is far off.
func TestMemberLeftTakesOverBeforeTheLease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if err := e.q.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	id := e.createRun(e.recording(3, 10), "instant", nil)
	if got, err := e.q.Pull(ctx, "ghost", 10, 100*time.Millisecond); err != nil || len(got) != 1 {
		t.Fatalf("ghost pulled %v, %v", got, err)
	}
	if _, err := e.runs.Start(ctx, id, 0, persistence.Owner{Worker: "ghost", ActorID: "ghost"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	w, _ := e.startWorker(workerOpts{concurrency: 1, lease: time.Hour})
	// Another member leaving changes nothing.
	w.MemberLeft("someone-else")
	time.Sleep(300 * time.Millisecond) // nothing to wait for: the absence of a take-over
	if r, _ := e.runs.Get(ctx, id); r.Attempt != 1 || r.WorkerNode != "ghost" {
		t.Fatalf("run moved when an unrelated member left: %+v", r)
	}
	start := time.Now()
	w.MemberLeft("ghost")
	run := e.waitRun(id, 60*time.Second)
	if run.Status != persistence.StatusPassed || run.Attempt != 2 || run.Deliveries != 1 {
		t.Fatalf("run = %s attempt %d deliveries %d, want passed as attempt 2 with one delivery", run.Status, run.Attempt, run.Deliveries)
	}
	t.Logf("taken over and finished %s after the member left", time.Since(start))
}

// A drained worker pulls nothing and says so; resumed, it pulls again.
func TestSetDrainingPausesAndResumesPulling(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w, _ := e.startWorker(workerOpts{concurrency: 1})
	time.Sleep(200 * time.Millisecond) // let its first blocking pull be in flight: the case a drain must handle
	wi, err := w.SetDraining(true, 5*time.Second)
	if err != nil || wi.State != "draining" || wi.Slots != 1 {
		t.Fatalf("drain = %+v, %v", wi, err)
	}
	id := e.createRun(e.recording(2, 10), "instant", nil)
	time.Sleep(3 * time.Second) // the absence of a start is what is tested: longer than a blocking pull (2 s)
	if r, _ := e.runs.Get(context.Background(), id); r.Status != persistence.StatusQueued {
		t.Fatalf("a draining worker took a run: %s", r.Status)
	}
	if wi, err = w.SetDraining(false, 5*time.Second); err != nil || wi.State != "active" {
		t.Fatalf("resume = %+v, %v", wi, err)
	}
	if run := e.waitRun(id, 60*time.Second); run.Status != persistence.StatusPassed {
		t.Fatalf("run after resume = %s", run.Status)
	}
}

// A departed worker's running runs that were cancel-requested, or whose
// deliveries are spent, are settled when it leaves (cancelled, given up),
// not after its lease: that lease is an hour here.
func TestMemberLeftSettlesCancelledAndSpentRunsBeforeTheLease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if err := e.q.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	cancelled := e.createRun(e.recording(3, 10), "instant", nil)
	spent := e.createRun(e.recording(3, 10), "instant", nil)
	if got, err := e.q.Pull(ctx, "ghost", 10, 100*time.Millisecond); err != nil || len(got) != 2 {
		t.Fatalf("ghost pulled %v, %v", got, err)
	}
	for _, id := range []uuid.UUID{cancelled, spent} {
		if _, err := e.runs.Start(ctx, id, 0, persistence.Owner{Worker: "ghost", ActorID: "ghost"}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := persistence.RequestUserRunCancel(ctx, e.db, e.user, cancelled, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Two deliveries spent: the next would be the third (the default max).
	if _, err := e.db.NewUpdate().Model((*persistence.Run)(nil)).Set("deliveries = ?", actors.DefaultMaxDeliveries-1).
		Where("id = ?", spent).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	w, _ := e.startWorker(workerOpts{concurrency: 2, lease: time.Hour})
	start := time.Now()
	w.MemberLeft("ghost")
	c := e.waitRun(cancelled, 30*time.Second)
	if c.Status != persistence.StatusCancelled || c.Attempt != 1 {
		t.Fatalf("cancel-requested run = %s attempt %d, want cancelled as attempt 1", c.Status, c.Attempt)
	}
	s := e.waitRun(spent, 30*time.Second)
	if s.Status != persistence.StatusFailed || s.ErrorMessage == nil || !contains(*s.ErrorMessage, "worker lost") ||
		s.Deliveries != actors.DefaultMaxDeliveries {
		t.Fatalf("spent run = %s (%v) deliveries %d, want failed with worker lost", s.Status, s.ErrorMessage, s.Deliveries)
	}
	t.Logf("both settled %s after the member left (lease: 1 h)", time.Since(start))
	// Nothing of theirs is left pending: the spent one was dead-lettered.
	if p, err := e.rdb.XPending(ctx, e.q.Stream(), queue.DefaultGroup).Result(); err != nil || p.Count != 0 {
		t.Fatalf("pending after settling = %+v, %v", p, err)
	}
	if dead, err := e.rdb.XLen(ctx, e.q.DeadStream()).Result(); err != nil || dead != 1 {
		t.Fatalf("dead letters = %d, %v; want the spent run's entry", dead, err)
	}
}

// The dead-owner guard: a cancel-orphan or give-up named after a worker
// that no longer owns the attempt changes nothing.
func TestSettleFromADepartedOwnerIsGuardedOnIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.createRun(e.recording(1, 10), "instant", nil)
	if _, err := e.runs.Start(ctx, id, 0, persistence.Owner{Worker: "alive", ActorID: "a"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := persistence.RequestUserRunCancel(ctx, e.db, e.user, id, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.runs.CancelOrphanFrom(ctx, id, 1, "ghost"); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("cancel-orphan from a worker that is not the owner: %v, want ErrStale", err)
	}
	if err := e.runs.GiveUpFrom(ctx, id, 1, "ghost", "worker lost"); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("give-up from a worker that is not the owner: %v, want ErrStale", err)
	}
	if err := e.runs.CancelOrphanFrom(ctx, id, 1, "alive"); err != nil {
		t.Fatalf("cancel-orphan from the departed owner: %v", err)
	}
	if r, _ := e.runs.Get(ctx, id); r.Status != persistence.StatusCancelled {
		t.Fatalf("run = %s, want cancelled", r.Status)
	}
}
