package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saveaction/runner/queue"
	"github.com/saveaction/runner/queue/redistest"
)

// Published events come back in order with increasing ids, Range resumes
// strictly after an id, and run.finished shortens the stream's life.
func TestEventsPublishRangeAndExpiry(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.New(t, "events")
	ev := queue.NewEvents(rdb, prefix, nil).WithTTL(time.Minute)
	ev.Start()
	id := uuid.New()
	ctx := context.Background()
	want := []queue.Event{
		queue.RunQueued(),
		queue.RunStarted(1, "w1"),
		queue.ActionStarted(1, 0, "act_001", "click"),
		queue.ActionFinished(queue.ActionFinishedData{Attempt: 1, Index: 0, ID: "act_001", Type: "click", Status: "success", DurationMs: 12}),
		queue.RunFinished(queue.RunFinishedData{Status: "passed", ActionsTotal: 1, ActionsExecuted: 1}),
	}
	for _, e := range want {
		ev.Publish(id, e)
	}
	if err := ev.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := ev.Range(ctx, id, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Name != want[i].Name || string(got[i].Data) != string(want[i].Data) {
			t.Errorf("event %d = %s %s, want %s %s", i, got[i].Name, got[i].Data, want[i].Name, want[i].Data)
		}
		if i > 0 && !queue.EventIDLess(got[i-1].ID, got[i].ID) {
			t.Errorf("ids not increasing: %s then %s", got[i-1].ID, got[i].ID)
		}
	}
	rest, err := ev.Range(ctx, id, got[2].ID, 100)
	if err != nil || len(rest) != 2 || rest[0].ID != got[3].ID {
		t.Fatalf("range after %s = %+v, %v; want the last two", got[2].ID, rest, err)
	}
	ttl, err := rdb.TTL(ctx, ev.Key(id)).Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL after run.finished = %v, %v; want within a minute", ttl, err)
	}
	last, err := ev.Last(ctx, id)
	if err != nil || last != got[4].ID {
		t.Fatalf("last = %q, %v", last, err)
	}
	// Publish after Close is a no-op, never a panic.
	ev.Publish(id, queue.RunQueued())
}

// Wait returns an event published while it blocks.
func TestEventsWaitSeesANewEvent(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.New(t, "events")
	ev := queue.NewEvents(rdb, prefix, nil)
	id := uuid.New()
	ctx := context.Background()
	first, err := ev.PublishNow(ctx, id, queue.RunQueued())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond) // the publisher, later than the reader
		_, _ = ev.PublishNow(ctx, id, queue.RunStarted(1, "w"))
	}()
	got, err := ev.Wait(ctx, id, first, 5*time.Second)
	if err != nil || len(got) != 1 || got[0].Name != queue.EventRunStarted {
		t.Fatalf("wait = %+v, %v", got, err)
	}
}

func TestEventIDOrder(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"1-0", "1-1", true}, {"9-0", "10-0", true}, {"10-0", "9-5", false}, {"5-5", "5-5", false},
	} {
		if got := queue.EventIDLess(c.a, c.b); got != c.less {
			t.Errorf("EventIDLess(%s, %s) = %v", c.a, c.b, got)
		}
	}
	for s, ok := range map[string]bool{"1-0": true, "17": true, "": false, "a-1": false, "1-x": false} {
		if queue.ValidEventID(s) != ok {
			t.Errorf("ValidEventID(%q) != %v", s, ok)
		}
	}
}
