package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/saveaction/runner/persistence"
)

// fakeClock moves only when told; waiters are released as it passes them.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	changed chan struct{}
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_800_000_000, 0), changed: make(chan struct{}, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	c.changed <- struct{}{}
	return ch
}

// waitForWaiter blocks until someone waits on the clock; false when
// stopped delivers first (the keeper is done and waits no more).
func (c *fakeClock) waitForWaiter(t *testing.T, stopped chan error) bool {
	t.Helper()
	for {
		c.mu.Lock()
		n := len(c.waiters)
		c.mu.Unlock()
		if n > 0 {
			return true
		}
		select {
		case <-c.changed:
		case cause := <-stopped:
			stopped <- cause
			return false
		case <-time.After(5 * time.Second):
			t.Fatal("nobody waits on the clock")
		}
	}
}

// advance moves the clock to the next waiter's time (at most by max) and
// releases it.
func (c *fakeClock) advance(max time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	target := c.now.Add(max)
	for _, w := range c.waiters {
		if w.at.Before(target) {
			target = w.at
		}
	}
	c.now = target
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

type keeperRun struct {
	clock   *fakeClock
	start   time.Time
	stopped chan error
	stopAt  time.Time
	mu      sync.Mutex
}

func startKeeper(t *testing.T, lease time.Duration, row func(context.Context) (persistence.Lease, error), entry func(context.Context) error) (*keeperRun, context.CancelFunc) {
	clock := newFakeClock()
	kr := &keeperRun{clock: clock, start: clock.Now(), stopped: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	k := &leaseKeeper{lease: lease, clock: clock, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		renewRow: row, renewEntry: entry,
		stop: func(cause error) {
			kr.mu.Lock()
			kr.stopAt = clock.Now()
			kr.mu.Unlock()
			kr.stopped <- cause
		}}
	done := make(chan struct{})
	go func() { defer close(done); k.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return kr, cancel
}

// A row lease that cannot be renewed stops the run before the lease ends,
// so no other worker can take the run while this one still runs it.
func TestLeaseKeeperStopsTheRunBeforeAnUnrenewableLeaseEnds(t *testing.T) {
	lease := 30 * time.Second
	kr, _ := startKeeper(t, lease,
		func(context.Context) (persistence.Lease, error) {
			return persistence.Lease{}, errors.New("database unreachable")
		},
		func(context.Context) error { return nil })
	for {
		select {
		case cause := <-kr.stopped:
			if !errors.Is(cause, errLeaseUnrenewable) {
				t.Fatalf("stopped with %v, want errLeaseUnrenewable", cause)
			}
			kr.mu.Lock()
			at := kr.stopAt.Sub(kr.start)
			kr.mu.Unlock()
			if at >= lease {
				t.Fatalf("stopped %s after the last renewal, at or past the %s lease", at, lease)
			}
			return
		default:
		}
		if kr.clock.waitForWaiter(t, kr.stopped) {
			kr.clock.advance(time.Second)
		}
	}
}

// A hung Redis (the entry's renewal never returns) costs nothing: the row
// lease goes on being renewed on its own deadline.
func TestLeaseKeeperRenewsTheRowWhileRedisHangs(t *testing.T) {
	lease := 30 * time.Second
	var mu sync.Mutex
	renewals := 0
	kr, _ := startKeeper(t, lease,
		func(context.Context) (persistence.Lease, error) {
			mu.Lock()
			renewals++
			mu.Unlock()
			return persistence.Lease{}, nil
		},
		func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	for kr.clock.Now().Sub(kr.start) < 10*lease {
		select {
		case cause := <-kr.stopped:
			t.Fatalf("run stopped (%v) while PostgreSQL renewed fine", cause)
		default:
		}
		if kr.clock.waitForWaiter(t, kr.stopped) {
			kr.clock.advance(time.Second)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if renewals < 25 {
		t.Fatalf("%d row renewals over ten leases, want about 30", renewals)
	}
}

func TestLeaseKeeperStopsOnALostLeaseOrACancel(t *testing.T) {
	for _, c := range []struct {
		name string
		row  persistence.Lease
		err  error
		want error
	}{
		{"taken over", persistence.Lease{}, persistence.ErrStale, errLeaseLost},
		{"cancel requested", persistence.Lease{CancelRequested: true}, nil, errCancelled},
	} {
		t.Run(c.name, func(t *testing.T) {
			kr, _ := startKeeper(t, 30*time.Second,
				func(context.Context) (persistence.Lease, error) { return c.row, c.err },
				func(context.Context) error { return nil })
			kr.clock.waitForWaiter(t, kr.stopped)
			kr.clock.advance(time.Minute)
			select {
			case cause := <-kr.stopped:
				if !errors.Is(cause, c.want) {
					t.Fatalf("stopped with %v, want %v", cause, c.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("not stopped")
			}
		})
	}
}
