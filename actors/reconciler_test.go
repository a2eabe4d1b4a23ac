package actors_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/saveaction/runner/actors"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue"
	"github.com/saveaction/runner/queue/redistest"
	"github.com/saveaction/runner/simulate"
)

// One pass of the reconciler re-dispatches every run Redis lost, page after
// page, and only one node holds its lock; the lock outlives a missed pass
// and moves when its holder stops renewing it (hole 8).
func TestReconcilerPagesThroughEveryRunUnderOneLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var ids []string
	for i := 0; i < 7; i++ {
		ids = append(ids, e.createRun(e.recording(1, 10), "instant", nil).String())
	}
	// Redis forgot them all, and they have waited longer than a lease.
	if err := e.rdb.Del(ctx, e.q.Stream()).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.q.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.NewUpdate().Model((*persistence.Run)(nil)).Set("updated_at = now() - interval '1 minute'").Where("id IN (?)", bun.List(ids)).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	mk := func(owner string) *actors.Reconciler {
		return &actors.Reconciler{Runs: e.runs, Queue: e.q, Redis: e.rdb, LockKey: e.prefix + "reconciler:lock", Owner: owner,
			Lease: time.Second, Interval: time.Second, Page: 2, Log: e.log}
	}
	a, b := mk("node-a"), mk("node-b")
	rep, err := a.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Skipped || rep.Requeued != 7 {
		t.Fatalf("first pass = %+v, want all 7 runs re-queued over 4 pages", rep)
	}
	if n, _ := e.rdb.XLen(ctx, e.q.Stream()).Result(); n != 7 {
		t.Fatalf("stream holds %d entries, want 7", n)
	}
	if rep, err := b.Once(ctx); err != nil || !rep.Skipped {
		t.Fatalf("second node's pass = %+v, %v; want skipped (lock held)", rep, err)
	}
	ttl, _ := e.rdb.PTTL(ctx, e.prefix+"reconciler:lock").Result()
	if ttl <= time.Second {
		t.Fatalf("lock TTL %s, want longer than the interval", ttl)
	}
	// The holder stops; its lock expires and the other node takes it.
	time.Sleep(ttl + 50*time.Millisecond)
	if rep, err := b.Once(ctx); err != nil || rep.Skipped || rep.Requeued != 0 {
		t.Fatalf("pass after the holder left = %+v, %v; want taken, nothing to do (idempotent)", rep, err)
	}
}

// beforeLook runs fn once, just before the first XRANGE that looks for
// entry (the reconciler's check whether a run still has its entry).
type beforeLook struct {
	entry string
	fn    func()
	done  bool
}

func (h *beforeLook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *beforeLook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *beforeLook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); !h.done && strings.EqualFold(cmd.Name(), "xrange") && len(args) > 2 && args[2] == h.entry {
			h.done = true
			h.fn()
		}
		return next(ctx, cmd)
	}
}

// A run that a worker pulls, runs and acks between the reconciler's listing
// of queued runs and its look for the run's entry has no entry because it
// is done, not because Redis lost it: the reconciler gives it no fresh
// entry and leaves its job id alone (the 20 000-run drain ended with
// thousands of such entries).
func TestReconcilerLeavesARunFinishedBetweenItsListAndItsLook(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.createRun(e.recording(2, 10), "instant", nil)
	// Queued for longer than a lease: every slot was busy.
	if _, err := e.db.NewUpdate().Model((*persistence.Run)(nil)).Set("updated_at = now() - interval '1 minute'").Where("id = ?", id).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	listed, err := e.runs.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// The reconciler sees Redis through a client that, when it looks for
	// the run's entry, first lets a real worker pull, run and ack it.
	looked := redis.NewClient(redistest.Options(t))
	t.Cleanup(func() { _ = looked.Close() })
	looked.AddHook(&beforeLook{entry: listed.JobID, fn: func() {
		e.startSimulated(simulate.Config{ActionTime: time.Millisecond}, 1, nil)
		if run := e.waitRun(id, 30*time.Second); run.Status != persistence.StatusPassed {
			t.Fatalf("run = %s (%v), want passed", run.Status, run.ErrorMessage)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if n, err := e.rdb.XLen(ctx, e.q.Stream()).Result(); err == nil && n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the finished run's entry was never acked")
			}
		}
	}})
	rec := &actors.Reconciler{Runs: e.runs, Queue: queue.New(looked, e.prefix), Redis: e.rdb, LockKey: e.prefix + "reconciler:lock",
		Owner: "node-a", Lease: time.Second, Interval: time.Second, Log: e.log}
	rep, err := rec.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after, err := e.runs.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.rdb.XLen(ctx, e.q.Stream()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requeued != 0 || n != 0 || after.JobID != listed.JobID {
		t.Fatalf("after the pass: %+v, %d entries in the stream, job id %s (was %s); want nothing re-queued, an empty stream, the job id kept",
			rep, n, after.JobID, listed.JobID)
	}
}

// A run still queued whose entry Redis lost gets one, recorded by a
// compare-and-set on the entry it had; a second pass finds the new entry
// and does nothing. A run that got another entry meanwhile keeps it.
func TestReconcilerRedispatchRecordsTheEntryOverTheOldOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.createRun(e.recording(1, 10), "instant", nil)
	listed, err := e.runs.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.runs.ReplaceJob(ctx, id, e.q.Stream(), "0-1", "0-2"); err != persistence.ErrStale {
		t.Fatalf("ReplaceJob over an entry the run does not have = %v, want ErrStale", err)
	}
	if err := e.rdb.Del(ctx, e.q.Stream()).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.q.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.NewUpdate().Model((*persistence.Run)(nil)).Set("updated_at = now() - interval '1 minute'").Where("id = ?", id).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	rec := &actors.Reconciler{Runs: e.runs, Queue: e.q, Redis: e.rdb, LockKey: e.prefix + "reconciler:lock",
		Owner: "node-a", Lease: time.Second, Interval: time.Second, Log: e.log}
	if rep, err := rec.Once(ctx); err != nil || rep.Requeued != 1 {
		t.Fatalf("pass = %+v, %v; want the run re-queued", rep, err)
	}
	after, err := e.runs.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if after.JobID == listed.JobID {
		t.Fatalf("job id still %s", after.JobID)
	}
	if ok, err := e.q.Contains(ctx, after.JobID); err != nil || !ok {
		t.Fatalf("new entry %s in the stream = %v, %v", after.JobID, ok, err)
	}
	if _, err := e.db.NewUpdate().Model((*persistence.Run)(nil)).Set("updated_at = now() - interval '1 minute'").Where("id = ?", id).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, err := rec.Once(ctx); err != nil || rep.Requeued != 0 {
		t.Fatalf("second pass = %+v, %v; want nothing to do", rep, err)
	}
}

// The API writes a run, then adds its entry: an API that dies between the
// two leaves a queued run with no entry (job_id empty). The reconciler
// gives it one after a lease, and a worker runs it: nothing is lost.
func TestRunWrittenByAnAPIThatDiedBeforeItsEntryStillRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	data := e.recording(2, 10)
	rec := &persistence.Recording{UserID: e.user, OriginalID: "rec-died", Name: "r", URL: e.site.URL, Data: data, Tags: []string{}, Variables: []string{}}
	if err := persistence.CreateRecording(ctx, e.db, rec); err != nil {
		t.Fatal(err)
	}
	o := persistence.DefaultRunOptions()
	o.TimingMode = "instant"
	run := &persistence.Run{UserID: e.user, RecordingID: rec.ID, RecordingVersion: rec.Version, RecordingName: "r",
		RecordingURL: e.site.URL, Variables: map[string]string{}, TriggeredBy: "api"}
	if err := o.ApplyTo(run); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if r := recover(); r != "died" {
				t.Fatalf("recovered %v, want the API's death", r)
			}
		}()
		_, _, _ = persistence.CreateRun(ctx, e.db, persistence.NewRun{Run: run, Now: time.Now(),
			Actions: []persistence.ActionRef{{ID: "act_001", Type: "input"}, {ID: "act_002", Type: "click"}},
			Enqueue: func(context.Context, uuid.UUID) (string, string, error) { panic("died") }})
	}()
	left, err := e.runs.Get(ctx, run.ID)
	if err != nil || left.Status != persistence.StatusQueued || left.JobID != "" {
		t.Fatalf("run left by the dead API = %+v, %v; want queued with no entry", left, err)
	}
	if _, err := e.db.NewUpdate().Model((*persistence.Run)(nil)).Set("updated_at = now() - interval '1 minute'").Where("id = ?", run.ID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	rc := &actors.Reconciler{Runs: e.runs, Queue: e.q, Redis: e.rdb, LockKey: e.prefix + "reconciler:lock",
		Owner: "node-a", Lease: time.Second, Interval: time.Second, Log: e.log}
	if rep, err := rc.Once(ctx); err != nil || rep.Requeued != 1 {
		t.Fatalf("pass = %+v, %v; want the run dispatched", rep, err)
	}
	e.startSimulated(simulate.Config{ActionTime: time.Millisecond}, 1, nil)
	if done := e.waitRun(run.ID, 30*time.Second); done.Status != persistence.StatusPassed || done.ActionsExecuted != 2 {
		t.Fatalf("run = %s, %d executed (%v)", done.Status, done.ActionsExecuted, done.ErrorMessage)
	}
}
