package actors_test

import (
	"context"
	"testing"
	"time"

	"github.com/saveaction/runner/persistence"
)

// A run whose owner left the cluster is taken over at once, though its
// lease is still valid and the reclaim pass (every lease/2) is far off.
func TestMemberLeftTakesOverBeforeTheLease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if err := e.q.EnsureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	id := e.createRun(e.recording(3, 10), "instant", nil)
	if got, err := e.q.Pull(ctx, "ghost", 10, 100*time.Millisecond); err != nil || len(got) != 1 {
		t.Fatalf("ghost pulled %v, %v", got, err)
	}
	if _, err := e.runs.Start(ctx, id, 0, persistence.Owner{Worker: "ghost", ActorID: "ghost"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	w, _ := e.startWorker(workerOpts{concurrency: 1, lease: time.Hour})
	// Another member leaving changes nothing.
	w.MemberLeft("someone-else")
	time.Sleep(300 * time.Millisecond) // nothing to wait for: the absence of a take-over
	if r, _ := e.runs.Get(ctx, id); r.Attempt != 1 || r.WorkerNode != "ghost" {
		t.Fatalf("run moved when an unrelated member left: %+v", r)
	}
	start := time.Now()
	w.MemberLeft("ghost")
	run := e.waitRun(id, 60*time.Second)
	if run.Status != persistence.StatusPassed || run.Attempt != 2 || run.Deliveries != 1 {
		t.Fatalf("run = %s attempt %d deliveries %d, want passed as attempt 2 with one delivery", run.Status, run.Attempt, run.Deliveries)
	}
	t.Logf("taken over and finished %s after the member left", time.Since(start))
}

// A drained worker pulls nothing and says so; resumed, it pulls again.
func TestSetDrainingPausesAndResumesPulling(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w, _ := e.startWorker(workerOpts{concurrency: 1})
	time.Sleep(200 * time.Millisecond) // let its first blocking pull be in flight: the case a drain must handle
	wi, err := w.SetDraining(true, 5*time.Second)
	if err != nil || wi.State != "draining" || wi.Slots != 1 {
		t.Fatalf("drain = %+v, %v", wi, err)
	}
	id := e.createRun(e.recording(2, 10), "instant", nil)
	time.Sleep(3 * time.Second) // the absence of a start is what is tested: longer than a blocking pull (2 s)
	if r, _ := e.runs.Get(context.Background(), id); r.Status != persistence.StatusQueued {
		t.Fatalf("a draining worker took a run: %s", r.Status)
	}
	if wi, err = w.SetDraining(false, 5*time.Second); err != nil || wi.State != "active" {
		t.Fatalf("resume = %+v, %v", wi, err)
	}
	if run := e.waitRun(id, 60*time.Second); run.Status != persistence.StatusPassed {
		t.Fatalf("run after resume = %s", run.Status)
	}
}
