package actors

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/saveaction/runner/persistence"
)

// Clock tells the time and waits; lease, reclaim and reconciler logic take
// one so their tests do not sleep through real leases.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// leaseKeeper renews a running attempt's two leases every lease/3: the row
// in PostgreSQL (the truth, fenced by attempt) and the stream entry's idle
// time in Redis. Each renewal has a deadline of its own, so a hung Redis
// cannot eat the time of the PostgreSQL renewal. When the row's lease
// cannot be renewed, the keeper stops the run before the lease can end:
// another worker may take it over only after that, so two attempts never
// run at once.
type leaseKeeper struct {
	lease time.Duration
	clock Clock
	log   *slog.Logger
	// renewRow renews the row's lease; renewEntry the stream entry's.
	renewRow   func(ctx context.Context) (persistence.Lease, error)
	renewEntry func(ctx context.Context) error
	// stop ends the run with a cause: errLeaseLost or errCancelled.
	stop context.CancelCauseFunc
}

// errLeaseUnrenewable ends a run whose row lease could not be renewed in
// time: the run stops before another worker may take it over.
var errLeaseUnrenewable = errors.New("lease could not be renewed")

// run renews until ctx ends or the run is stopped.
func (k *leaseKeeper) run(ctx context.Context) {
	every := k.lease / 3
	// The row's lease ends lease after the last renewal that succeeded (by
	// the database's clock, which started counting after we sent it). Stop
	// a margin before that.
	margin := k.lease / 6
	lastOK := k.clock.Now()
	failing := false
	var entryBusy atomic.Bool
	for {
		deadline := lastOK.Add(k.lease - margin)
		wait := every
		if failing {
			wait = every / 3 // retry sooner while the row lease runs out
		}
		if left := deadline.Sub(k.clock.Now()); left < wait {
			wait = max(left, 0)
		}
		select {
		case <-ctx.Done():
			return
		case <-k.clock.After(wait):
		}
		if !k.clock.Now().Before(deadline) {
			k.log.Error("run lease not renewed in time; stopping the run before another worker may take it")
			k.stop(errLeaseUnrenewable)
			return
		}
		if entryBusy.CompareAndSwap(false, true) {
			go func() {
				defer entryBusy.Store(false)
				ectx, cancel := context.WithTimeout(ctx, every)
				defer cancel()
				if err := k.renewEntry(ectx); err != nil && ctx.Err() == nil {
					k.log.Warn("renew stream lease", "error", err)
				}
			}()
		}
		sent := k.clock.Now()
		// A slow renewal that lands before the deadline still counts.
		rctx, cancel := context.WithTimeout(ctx, deadline.Sub(sent))
		lease, err := k.renewRow(rctx)
		cancel()
		switch {
		case errors.Is(err, persistence.ErrStale):
			k.stop(errLeaseLost)
			return
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			failing = true
			k.log.Warn("renew run lease", "error", err)
		case lease.CancelRequested:
			k.stop(errCancelled)
			return
		default:
			lastOK, failing = sent, false
		}
	}
}
