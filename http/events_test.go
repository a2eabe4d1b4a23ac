package http

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saveaction/runner/queue"
	"github.com/saveaction/runner/queue/redistest"
)

// Many subscribers of one run share one hub (one Redis read loop); each
// gets every new event; the hub goes away after its last subscriber.
func TestHubFansOutOneReadToManySubscribers(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.New(t, "hub")
	ev := queue.NewEvents(rdb, prefix, nil)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	hs := newHubs(ctx, ev, slog.Default())
	run := uuid.New()
	const n = 200
	subs := make([]*subscriber, n)
	for i := range subs {
		s, err := hs.subscribe(run)
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
	}
	hs.mu.Lock()
	hubsOpen := len(hs.m)
	hs.mu.Unlock()
	if hubsOpen != 1 {
		t.Fatalf("%d hubs for one run, want 1", hubsOpen)
	}
	id, err := ev.PublishNow(ctx, run, queue.RunStarted(1, "w"))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range subs {
		select {
		case got := <-s.ch:
			if got.ID != id || got.Name != queue.EventRunStarted {
				t.Fatalf("subscriber %d got %+v", i, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("subscriber %d got nothing", i)
		}
	}
	for _, s := range subs {
		hs.unsubscribe(s)
	}
	deadline := time.Now().Add(3 * hubBlock)
	for {
		hs.mu.Lock()
		left := len(hs.m)
		hs.mu.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hub outlived its subscribers")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Shutdown ends a hub and closes its subscribers' channels.
	s, err := hs.subscribe(run)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	select {
	case _, ok := <-s.ch:
		if ok {
			t.Fatal("an event after shutdown")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown left the subscriber open")
	}
}
