package actors_test

import (
	"context"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/saveaction/runner/actors"
	"github.com/saveaction/runner/persistence"
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
