package actors

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

type timerTick struct{}

// A repeating timer stopped as it fires, again and again: it sends until
// it is stopped and nothing after (run with -race: stopping while the tick
// fires is where protoactor's own repeating timer races).
func TestSendEveryStopsWhileFiring(t *testing.T) {
	sys := actor.NewActorSystem()
	var got atomic.Int64
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*timerTick); ok {
			got.Add(1)
		}
	}))
	defer sys.Root.Stop(pid)

	var stops []func()
	for i := range 300 {
		stop := sendEvery(sys.Root, 100*time.Microsecond, pid, &timerTick{})
		time.Sleep(time.Duration(i%7) * 100 * time.Microsecond)
		stop()
		stop() // a second stop is harmless
		stops = append(stops, stop)
	}
	// Messages already in the mailbox are delivered; then none come.
	time.Sleep(50 * time.Millisecond)
	before := got.Load()
	if before == 0 {
		t.Fatal("no tick was delivered")
	}
	time.Sleep(100 * time.Millisecond)
	if after := got.Load(); after != before {
		t.Fatalf("%d ticks delivered after every timer stopped", after-before)
	}
	for _, stop := range stops {
		stop()
	}
}

func TestSendAfterSendsOnce(t *testing.T) {
	sys := actor.NewActorSystem()
	got := make(chan struct{}, 2)
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*timerTick); ok {
			got <- struct{}{}
		}
	}))
	defer sys.Root.Stop(pid)
	start := time.Now()
	sendAfter(sys.Root, 30*time.Millisecond, pid, &timerTick{})
	select {
	case <-got:
		if d := time.Since(start); d < 30*time.Millisecond {
			t.Fatalf("sent after %s, want after 30ms", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not sent")
	}
	select {
	case <-got:
		t.Fatal("sent twice")
	case <-time.After(100 * time.Millisecond):
	}
}
