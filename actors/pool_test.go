package actors_test

import (
	"context"
	"testing"
	"time"

	"github.com/saveaction/runner/actors"
	"github.com/saveaction/runner/browser"
)

func launchReal(ctx context.Context) (*browser.Browser, error) {
	return browser.Launch(ctx, browser.LaunchOptions{Headless: true})
}

func TestPoolSharesRecyclesAndIsolates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := actors.NewPool(actors.PoolConfig{Launch: launchReal, MaxRuns: 2})
	defer pool.Close()

	a, err := pool.Acquire(ctx, actors.IsolationContext)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pool.Acquire(ctx, actors.IsolationContext)
	if err != nil {
		t.Fatal(err)
	}
	if a.Browser() != b.Browser() {
		t.Fatal("two context-isolated runs got different processes; want one warm browser shared")
	}
	first := a.Browser()
	a.Release(false)
	b.Release(false)
	// After MaxRuns the process is recycled: the next run gets a fresh one
	// and the old one is closed since nobody uses it.
	c, err := pool.Acquire(ctx, actors.IsolationContext)
	if err != nil {
		t.Fatal(err)
	}
	if c.Browser() == first {
		t.Fatal("browser not recycled after MaxRuns")
	}
	if first.Alive() {
		t.Fatal("recycled browser still running")
	}
	own, err := pool.Acquire(ctx, actors.IsolationBrowser)
	if err != nil {
		t.Fatal(err)
	}
	if own.Browser() == c.Browser() {
		t.Fatal("isolation browser shares the pooled process")
	}
	if rss := actors.GroupRSS(own.Browser().PID()); rss <= 0 {
		t.Fatalf("GroupRSS of a live browser = %d", rss)
	}
	own.Release(false)
	if own.Browser().Alive() {
		t.Fatal("a run's own browser outlived its run")
	}
	// A crash retires the shared process.
	c.Release(true)
	if c.Browser().Alive() {
		t.Fatal("crashed browser not closed")
	}
	if n := len(pool.PIDs()); n != 0 {
		t.Fatalf("pool still holds %d processes", n)
	}
}

func TestPoolRecyclesOverRSSCeiling(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := actors.NewPool(actors.PoolConfig{Launch: launchReal, MaxRSSBytes: 1}) // any real browser is over 1 byte
	defer pool.Close()
	a, err := pool.Acquire(ctx, actors.IsolationContext)
	if err != nil {
		t.Fatal(err)
	}
	a.Release(false)
	b, err := pool.Acquire(ctx, actors.IsolationContext)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release(false)
	if a.Browser() == b.Browser() || a.Browser().Alive() {
		t.Fatal("browser over its RSS ceiling was not recycled")
	}
}

// The shared process keeps the spare contexts PoolConfig.Spares asks for;
// a run's own process keeps none.
func TestPoolKeepsSpareContexts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := actors.NewPool(actors.PoolConfig{Launch: launchReal, Spares: 1})
	defer pool.Close()
	waitSpares := func(b *browser.Browser, n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for b.Spares() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d spare contexts ready after 60 s, want %d", b.Spares(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	a, err := pool.Acquire(ctx, actors.IsolationContext)
	if err != nil {
		t.Fatal(err)
	}
	waitSpares(a.Browser(), 1)
	a.Release(false)
	own, err := pool.Acquire(ctx, actors.IsolationBrowser)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Release(false)
	time.Sleep(500 * time.Millisecond)
	if n := own.Browser().Spares(); n != 0 {
		t.Fatalf("a run's own browser keeps %d spares, want none", n)
	}
}
