package actors

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/saveaction/runner/queue"
	"github.com/saveaction/runner/queue/redistest"
)

// The queue gauges are exported only while this node holds the role, and
// then carry the stream's depth as read at scrape time.
func TestQueueMetricsOnlyWhileHolding(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.New(t, "queue-metrics")
	q := queue.New(rdb, prefix)
	if err := q.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	var holding atomic.Bool
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewQueueMetrics(q, func(context.Context) bool { return holding.Load() }, slog.Default()))

	if got := gather(t, reg); len(got) != 0 {
		t.Fatalf("not holding: %v, want no series", got)
	}
	for range 3 {
		if _, err := q.Enqueue(ctx, uuid.New()); err != nil {
			t.Fatal(err)
		}
	}
	holding.Store(true)
	got := gather(t, reg)
	if len(got) != 2 || got[MetricQueueDepth] != 3 {
		t.Fatalf("holding with 3 entries: %v", got)
	}
	if age, ok := got[MetricQueueOldestAge]; !ok || age < 0 || age > 60 {
		t.Fatalf("oldest age %v (exported %v) of entries just added", age, ok)
	}
	holding.Store(false) // the role moved: nothing, not the last value
	if got := gather(t, reg); len(got) != 0 {
		t.Fatalf("after losing the role: %v, want no series (not the last value)", got)
	}
}

// HoldsLock is true for the reconciler that took the lock only.
func TestReconcilerHoldsLock(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.New(t, "reconciler-lock")
	a := &Reconciler{Redis: rdb, LockKey: prefix + "lock", Owner: "a"}
	b := &Reconciler{Redis: rdb, LockKey: prefix + "lock", Owner: "b"}
	if a.HoldsLock(ctx) || b.HoldsLock(ctx) {
		t.Fatal("a free lock is held by nobody")
	}
	if err := rdb.Set(ctx, prefix+"lock", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if !a.HoldsLock(ctx) || b.HoldsLock(ctx) {
		t.Fatalf("lock of a: a holds %v, b holds %v", a.HoldsLock(ctx), b.HoldsLock(ctx))
	}
}

// gather scrapes reg: each unlabelled gauge's value by name.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			out[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	return out
}
