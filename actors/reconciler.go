package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue"
)

// Reconciler repairs what Redis forgot (DESIGN.md rule 2). It adds no
// transition of its own: it re-creates the stream entry of a run that is
// queued in PostgreSQL with no entry, or running with an owner gone (lease
// ended by the database's clock) and no entry anyone could reclaim; the
// worker that pulls the entry takes the transition the lifecycle table
// gives (take over, cancel, give up). One node at a time does it, under a
// Redis lock taken and extended atomically; each pass is idempotent, so a
// brief overlap when the lock moves does no harm.
type Reconciler struct {
	Runs    *persistence.Runs
	Queue   *queue.Queue
	Redis   redis.UniversalClient
	LockKey string        // e.g. "sa:reconciler:lock"
	Owner   string        // this node's name, the lock's value
	Lease   time.Duration // the run lease; a queued run is looked at after this long
	// Interval is how often to look (default Lease). The lock lives three
	// intervals, so a holder that misses one pass keeps it.
	Interval time.Duration
	// Page is how many runs one query reads (default 500); a pass reads
	// every page.
	Page    int
	Log     *slog.Logger
	Metrics *Metrics
}

func (r *Reconciler) interval() time.Duration {
	if r.Interval > 0 {
		return r.Interval
	}
	return r.Lease
}

// Run reconciles every Interval until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	t := time.NewTicker(r.interval())
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
	Revived  int // running runs whose owner is gone given a new entry
	Skipped  bool
}

// lockScript takes the lock when free, extends it when ours, in one step.
var lockScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
elseif v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`)

// HoldsLock reports whether this node holds the reconciler's lock now (it
// is the node that exports the fleet's queue metrics without a cluster).
// A Redis that does not answer counts as not holding.
func (r *Reconciler) HoldsLock(ctx context.Context) bool {
	v, err := r.Redis.Get(ctx, r.LockKey).Result()
	return err == nil && v == r.Owner
}

// Once makes one pass, if this node holds (or takes) the lock.
func (r *Reconciler) Once(ctx context.Context) (Report, error) {
	var rep Report
	ttl := 3 * r.interval()
	ok, err := lockScript.Run(ctx, r.Redis, []string{r.LockKey}, r.Owner, ttl.Milliseconds()).Int()
	if err != nil {
		return rep, fmt.Errorf("take reconciler lock: %w", err)
	}
	if ok != 1 {
		rep.Skipped = true
		return rep, nil
	}
	page := r.Page
	if page <= 0 {
		page = 500
	}
	// A run queued for longer than a lease should have been pulled by now
	// unless every worker is busy; only the missing entries matter.
	var c persistence.Cursor
	for {
		queued, err := r.Runs.QueuedBefore(ctx, r.Lease, c, page)
		if err != nil {
			return rep, err
		}
		n, err := r.redispatchMissing(ctx, queued)
		if err != nil {
			return rep, err
		}
		rep.Requeued += n
		if len(queued) < page {
			break
		}
		last := queued[len(queued)-1]
		c = persistence.Cursor{At: last.UpdatedAt, ID: last.ID}
	}
	c = persistence.Cursor{}
	for {
		stuck, err := r.Runs.Stuck(ctx, c, page)
		if err != nil {
			return rep, err
		}
		n, err := r.redispatchMissing(ctx, stuck)
		if err != nil {
			return rep, err
		}
		rep.Revived += n
		if len(stuck) < page {
			break
		}
		last := stuck[len(stuck)-1]
		c = persistence.Cursor{At: *last.LeaseExpiresAt, ID: last.ID}
	}
	if rep.Requeued+rep.Revived > 0 {
		r.Log.Info("reconciled runs Redis had lost", "requeued", rep.Requeued, "revived", rep.Revived)
	}
	return rep, nil
}

// redispatchMissing gives each run whose stream entry is gone a new one.
//
// The listing is older than the entry's look: a run pulled, run and acked
// in between has no entry because it is done, not because Redis lost it.
// So an entry found gone is followed by a second look at PostgreSQL (the
// run still in the status and attempt listed, with the same entry: a
// worker acks an entry only after the run left that state), and the new
// entry is recorded by a compare-and-set on the old one.
func (r *Reconciler) redispatchMissing(ctx context.Context, runs []persistence.Run) (int, error) {
	n := 0
	for i := range runs {
		run := &runs[i]
		present, err := r.Queue.Contains(ctx, run.JobID)
		if err != nil {
			return n, err
		}
		if present {
			continue // a coordinator pulls or reclaims it
		}
		adrift, err := r.Runs.StillAdrift(ctx, run)
		if err != nil {
			return n, err
		}
		if !adrift {
			continue // it moved on (pulled and finished, cancelled, taken over)
		}
		entryID, err := r.Queue.Enqueue(ctx, run.ID)
		if err != nil {
			return n, err
		}
		err = r.Runs.ReplaceJob(ctx, run.ID, r.Queue.Stream(), run.JobID, entryID)
		if errors.Is(err, persistence.ErrStale) {
			// Another node gave it an entry meanwhile (a hand-back, a
			// reconciler before the lock moved): ours is a duplicate, which
			// the claim acks when it finds the run live or finished.
			r.Log.Info("run got another entry while reconciling", "runId", run.ID, "entry", entryID)
			continue
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
