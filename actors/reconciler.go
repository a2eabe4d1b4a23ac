package actors

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue"
)

// Reconciler repairs what Redis forgot (DESIGN.md rule 2): runs queued in
// PostgreSQL whose stream entry is gone are queued again, and runs left
// running with no live lease and no entry anyone could reclaim are
// dispatched again as their next attempt, or failed with "worker lost" once
// their attempts are spent. One node at a time does it, under a Redis lock.
type Reconciler struct {
	Runs          *persistence.Runs
	Queue         *queue.Queue
	Redis         redis.UniversalClient
	LockKey       string        // e.g. "sa:reconciler:lock"
	Owner         string        // this node's name, the lock's value
	Lease         time.Duration // the run lease; stale means idle longer than this
	MaxDeliveries int
	Interval      time.Duration // how often to look (default Lease)
	Log           *slog.Logger
	Metrics       *Metrics
	Now           func() time.Time
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Run reconciles every Interval until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	every := r.Interval
	if every <= 0 {
		every = r.Lease
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := r.Once(ctx); err != nil && ctx.Err() == nil {
			r.Log.Warn("reconcile runs", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Report counts what one pass did.
type Report struct {
	Requeued int // queued runs given a new stream entry
	Revived  int // abandoned running runs dispatched again
	Failed   int // abandoned running runs failed as worker lost
	Skipped  bool
}

// Once makes one pass, if this node holds the lock.
func (r *Reconciler) Once(ctx context.Context) (Report, error) {
	var rep Report
	ok, err := r.Redis.SetNX(ctx, r.LockKey, r.Owner, r.Lease).Result()
	if err != nil {
		return rep, fmt.Errorf("take reconciler lock: %w", err)
	}
	if !ok {
		if holder, _ := r.Redis.Get(ctx, r.LockKey).Result(); holder != r.Owner {
			rep.Skipped = true
			return rep, nil
		}
		r.Redis.Expire(ctx, r.LockKey, r.Lease)
	}
	// A run queued for longer than a lease should have been pulled by now
	// unless every worker is busy; only the missing entries matter.
	cutoff := r.now().Add(-r.Lease)
	queued, err := r.Runs.QueuedBefore(ctx, cutoff, 500)
	if err != nil {
		return rep, err
	}
	for i := range queued {
		run := &queued[i]
		present, err := r.Queue.Contains(ctx, run.JobID)
		if err != nil {
			return rep, err
		}
		if present {
			continue
		}
		if err := r.redispatch(ctx, run); err != nil {
			return rep, err
		}
		rep.Requeued++
	}
	stuck, err := r.Runs.Stuck(ctx, cutoff, 500)
	if err != nil {
		return rep, err
	}
	for i := range stuck {
		run := &stuck[i]
		present, err := r.Queue.Contains(ctx, run.JobID)
		if err != nil {
			return rep, err
		}
		if present {
			continue // a coordinator reclaims it from the stream
		}
		if run.Attempt >= r.MaxDeliveries {
			msg := fmt.Sprintf("worker lost: no live lease after %d attempts", run.Attempt)
			if err := r.Runs.Fail(ctx, run.ID, persistence.StatusRunning, run.Attempt, msg); err == nil {
				rep.Failed++
				if r.Metrics != nil {
					r.Metrics.RunsTotal.WithLabelValues(persistence.StatusFailed).Inc()
				}
			}
			continue
		}
		if err := r.redispatch(ctx, run); err != nil {
			return rep, err
		}
		rep.Revived++
	}
	if rep.Requeued+rep.Revived+rep.Failed > 0 {
		r.Log.Info("reconciled runs Redis had lost", "requeued", rep.Requeued, "revived", rep.Revived, "failed", rep.Failed)
	}
	return rep, nil
}

func (r *Reconciler) redispatch(ctx context.Context, run *persistence.Run) error {
	entryID, err := r.Queue.Enqueue(ctx, run.ID)
	if err != nil {
		return err
	}
	return r.Runs.SetJob(ctx, run.ID, r.Queue.Stream(), entryID)
}
