package main

// Process-level tests of the run lifecycle (the holes of the lifecycle
// issue): real api and worker processes, real PostgreSQL, Redis and
// Chromium, and the damage done for real (kill -9, SIGTERM, SIGSTOP of
// Redis, a PostgreSQL that rejects writes).

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/saveaction/runner/persistence"
)

// db opens the fleet's database (closed at the end of the test).
func (f *fleet) db() *bun.DB {
	f.t.Helper()
	db, err := persistence.Open(context.Background(), f.dsn)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = db.Close() })
	return db
}

// redis is a client of the Redis the fleet's processes use, with the
// dispatch stream's consumer group made (workers make it when they start).
func (f *fleet) redis() *redis.Client {
	url := "redis://127.0.0.1:6379/0"
	for _, kv := range f.env {
		if v, ok := strings.CutPrefix(kv, "REDIS_URL="); ok {
			url = v
		}
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		f.t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	f.t.Cleanup(func() { _ = rdb.Close() })
	err = rdb.XGroupCreateMkStream(context.Background(), f.prefix+"runs", "workers", "0").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		f.t.Fatal(err)
	}
	return rdb
}

// successes counts the run's actions that succeeded.
func (f *fleet) successes(id string) int {
	n := 0
	for _, a := range f.actions(id) {
		if a.Status == "success" {
			n++
		}
	}
	return n
}

func terminal(r runView) bool { return persistence.IsTerminal(persistence.Status(r.Status)) }

// Hole 1: a cancel of a run whose worker died must end it cancelled within
// about a lease, whoever picks it up; the same for DELETE.
func TestCancelOfARunWhoseWorkerDiedEndsItCancelled(t *testing.T) {
	f := newFleet(t, "LEASE_SECONDS=3")
	a := f.worker("worker-a", "WORKER_CONCURRENCY=2")
	opts := map[string]any{"timingMode": "realistic", "timeout": 5000}
	cancelled := f.createRun(f.slowRecording(20), opts)
	deleted := f.createRun(f.slowRecording(20), opts)
	for _, id := range []string{cancelled, deleted} {
		f.waitFor(id, 60*time.Second, "running on worker-a", func(r runView) bool { return r.Status == "running" && r.WorkerNode == "worker-a" })
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.exited(10 * time.Second)
	var got runView
	f.api.call("POST", "/api/v1/runs/"+cancelled+"/cancel", nil, 202, &got)
	if got.Status != "running" {
		t.Fatalf("cancel answered %s, want 202 running (its worker is dead)", got.Status)
	}
	f.api.call("DELETE", "/api/v1/runs/"+deleted, nil, 200, nil)
	asked := time.Now()
	f.worker("worker-b", "WORKER_CONCURRENCY=2")
	run := f.waitFor(cancelled, 30*time.Second, "cancelled", terminal)
	if run.Status != "cancelled" {
		t.Fatalf("run = %+v, want cancelled", run)
	}
	for _, act := range f.actions(cancelled) {
		if act.Status == "pending" {
			t.Errorf("action %d still pending", act.ActionIndex)
		}
	}
	db := f.db()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r, err := (&persistence.Runs{DB: db}).Get(context.Background(), uuid.MustParse(deleted))
		if err != nil {
			t.Fatal(err)
		}
		if persistence.IsTerminal(persistence.Status(r.Status)) {
			if r.Status != persistence.StatusCancelled {
				t.Fatalf("deleted run ended %s, want cancelled", r.Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleted run still %s 30 s after DELETE", r.Status)
		}
	}
	t.Logf("both runs of the dead worker cancelled %s after the requests (lease 3 s)", time.Since(asked))
}

// Hole 2: rolling restarts hand a run back more times than maxDeliveries;
// a hand-back is no failed delivery, so the run still passes.
func TestRollingRestartsNeverBurnAttempts(t *testing.T) {
	f := newFleet(t, "LEASE_SECONDS=10", "SHUTDOWN_GRACE_SECONDS=0")
	id := f.createRun(f.slowRecording(6), map[string]any{"timingMode": "realistic", "timeout": 5000})
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("worker-%d", i)
		w := f.worker(name, "WORKER_CONCURRENCY=1")
		f.waitFor(id, 60*time.Second, "running on "+name, func(r runView) bool { return r.Status == "running" && r.WorkerNode == name })
		if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if !w.exited(30 * time.Second) {
			t.Fatalf("%s did not exit after SIGTERM", name)
		}
		if r := f.waitFor(id, 10*time.Second, "handed back", func(r runView) bool { return r.Status != "running" }); r.Status != "queued" {
			t.Fatalf("after SIGTERM %d the run is %+v, want queued", i, r)
		}
	}
	f.worker("worker-last", "WORKER_CONCURRENCY=1")
	run := f.waitFor(id, 90*time.Second, "finished", terminal)
	if run.Status != "passed" || run.Attempt != 4 {
		t.Fatalf("run after three hand-backs = %+v, want passed as attempt 4", run)
	}
	if n := f.successes(id); n != 6 {
		t.Fatalf("%d successful rows, want 6", n)
	}
}

// Hole 3: a dead worker's entry behind many live pending entries is still
// reclaimed (Redis looks at ten times COUNT entries per XAUTOCLAIM).
func TestReclaimFindsADeadEntryBehindLiveOnes(t *testing.T) {
	f := newFleet(t, "LEASE_SECONDS=3")
	ctx := context.Background()
	db, rdb := f.db(), f.redis()
	stream := f.prefix + "runs"
	var rec struct {
		ID string `json:"id"`
	}
	f.api.call("POST", "/api/v1/recordings", f.slowRecording(2), 201, &rec)
	const live = 40
	var liveIDs []string
	for i := 0; i < live; i++ {
		var run struct {
			ID string `json:"id"`
		}
		f.api.call("POST", "/api/v1/runs", map[string]any{"recordingId": rec.ID, "options": map[string]any{"timingMode": "instant"}}, 201, &run)
		liveIDs = append(liveIDs, run.ID)
	}
	// A live worker (this test) holds 40 long runs and renews them.
	msgs, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "workers", Consumer: "ghost-live", Streams: []string{stream, ">"}, Count: live}).Result()
	if err != nil || len(msgs[0].Messages) != live {
		t.Fatalf("ghost pull: %v", err)
	}
	var liveEntries []string
	for _, m := range msgs[0].Messages {
		liveEntries = append(liveEntries, m.ID)
	}
	if _, err := db.NewUpdate().Model((*persistence.Run)(nil)).
		Set("status = 'running', attempt = 1, worker_node = 'ghost-live', lease_expires_at = now() + interval '1 hour'").
		Where("id IN (?)", bun.List(liveIDs)).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	// Behind them, the entry of a worker that died mid-run.
	var dead struct {
		ID string `json:"id"`
	}
	f.api.call("POST", "/api/v1/runs", map[string]any{"recordingId": rec.ID, "options": map[string]any{"timingMode": "instant"}}, 201, &dead)
	if _, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "workers", Consumer: "ghost-dead", Streams: []string{stream, ">"}, Count: 1}).Result(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.NewUpdate().Model((*persistence.Run)(nil)).
		Set("status = 'running', attempt = 1, worker_node = 'ghost-dead', lease_expires_at = now() - interval '1 second'").
		Where("id = ?", dead.ID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		for {
			rdb.XClaimJustID(ctx, &redis.XClaimArgs{Stream: stream, Group: "workers", Consumer: "ghost-live", Messages: liveEntries})
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); <-renewed }()
	time.Sleep(3500 * time.Millisecond) // the dead entry idles past the lease
	f.worker("worker-a", "WORKER_CONCURRENCY=1")
	run := f.waitFor(dead.ID, 40*time.Second, "finished", terminal)
	if run.Status != "passed" || run.Attempt != 2 {
		t.Fatalf("dead worker's run = %+v, want passed as attempt 2", run)
	}
}

// Hole 4: a hung (not refused) Redis must not cost a healthy owner its
// PostgreSQL lease: the run goes on as attempt 1 and is never run twice.
func TestHungRedisDoesNotCostTheOwnerItsLease(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	port := freePort(t)
	srv := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Signal(syscall.SIGCONT); _ = srv.Process.Kill(); _ = srv.Wait() })
	probe := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	for i := 0; i < 100 && probe.Ping(context.Background()).Err() != nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	_ = probe.Close()

	f := newFleet(t, fmt.Sprintf("REDIS_URL=redis://127.0.0.1:%d/0", port), "LEASE_SECONDS=3")
	f.worker("worker-a", "WORKER_CONCURRENCY=1")
	f.worker("worker-b", "WORKER_CONCURRENCY=1")
	const steps = 36
	id := f.createRun(f.slowRecording(steps), map[string]any{"timingMode": "realistic", "timeout": 5000})
	f.waitFor(id, 60*time.Second, "two actions done", func(r runView) bool { return r.Status == "running" && f.successes(id) >= 2 })
	// Redis hangs for longer than a lease, then answers for a moment, again
	// and again: each time the other worker may reclaim the idle entry, and
	// must find the owner's PostgreSQL lease alive.
	for i := 0; i < 6; i++ {
		if err := srv.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3500 * time.Millisecond)
		if err := srv.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
	}
	run := f.waitFor(id, 90*time.Second, "finished", terminal)
	if run.Status != "passed" || run.Attempt != 1 {
		t.Fatalf("run = %+v, want passed as attempt 1 (its owner never lost the lease)", run)
	}
	if n := f.successes(id); n != steps {
		t.Fatalf("%d successful rows, want %d", n, steps)
	}
}

// Hole 5: a worker never runs more than WORKER_CONCURRENCY runs, even when
// a reclaim and a pull both deliver.
func TestWorkerNeverExceedsItsSlots(t *testing.T) {
	f := newFleet(t, "LEASE_SECONDS=3")
	ctx := context.Background()
	db, rdb := f.db(), f.redis()
	stream := f.prefix + "runs"
	opts := map[string]any{"timingMode": "realistic", "timeout": 5000}
	// A run whose worker died: its entry pending and idle, its lease over.
	dead := f.createRun(f.slowRecording(8), opts)
	if _, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "workers", Consumer: "ghost-dead", Streams: []string{stream, ">"}, Count: 1}).Result(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.NewUpdate().Model((*persistence.Run)(nil)).
		Set("status = 'running', attempt = 1, worker_node = 'ghost-dead', lease_expires_at = now() - interval '1 second'").
		Where("id = ?", dead).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3500 * time.Millisecond)
	// A second run, queued with its entry held back until the first runs.
	next := f.createRun(f.slowRecording(2), opts)
	last, err := rdb.XRevRangeN(ctx, stream, "+", "-", 1).Result()
	if err != nil || len(last) != 1 || last[0].Values["runId"] != next {
		t.Fatalf("newest entry = %+v, %v; want next's", last, err)
	}
	if err := rdb.XDel(ctx, stream, last[0].ID).Err(); err != nil {
		t.Fatal(err)
	}
	f.worker("worker-a", "WORKER_CONCURRENCY=1")
	running := func() int {
		var n int
		if err := db.NewSelect().Model((*persistence.Run)(nil)).ColumnExpr("count(*)").
			Where("status = 'running' AND worker_node = 'worker-a'").Scan(ctx, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(30 * time.Second); running() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the dead worker's run was never reclaimed:\n%s", f.logs())
		}
	}
	// The reclaim has delivered; a pull may still be in flight.
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: map[string]any{"runId": next}}).Err(); err != nil {
		t.Fatal(err)
	}
	most := 0
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		most = max(most, running())
	}
	if most > 1 {
		t.Fatalf("worker-a ran %d runs at once with WORKER_CONCURRENCY=1", most)
	}
	if testing.Verbose() {
		t.Logf("at most %d at once; logs:\n%s", most, f.logs())
	}
	for _, id := range []string{dead, next} {
		if r := f.waitFor(id, 90*time.Second, "finished", terminal); r.Status != "passed" {
			t.Errorf("run %s = %+v", id, r)
		}
	}
}

// Hole 6: a run replays the recording as it was when the run was created.
func TestRunReplaysTheRecordingItWasCreatedWith(t *testing.T) {
	f := newFleet(t)
	orig := f.slowRecording(3)
	var rec struct {
		ID string `json:"id"`
	}
	f.api.call("POST", "/api/v1/recordings", orig, 201, &rec)
	var run struct {
		ID string `json:"id"`
	}
	f.api.call("POST", "/api/v1/runs", map[string]any{"recordingId": rec.ID, "options": map[string]any{"timingMode": "instant"}}, 201, &run)
	// The recording changes before any worker picks the run up.
	var changed map[string]any
	if err := json.Unmarshal(orig, &changed); err != nil {
		t.Fatal(err)
	}
	acts := changed["actions"].([]any)
	for i := 3; i < 6; i++ {
		a := map[string]any{}
		for k, v := range acts[0].(map[string]any) {
			a[k] = v
		}
		a["id"] = fmt.Sprintf("act_%03d", i+1)
		a["timestamp"] = 1764645600000.0 + float64(i)*1000
		acts = append(acts, a)
	}
	changed["actions"] = acts
	body, _ := json.Marshal(changed)
	put, _ := json.Marshal(map[string]json.RawMessage{"data": body})
	f.api.call("PUT", "/api/v1/recordings/"+rec.ID, put, 200, nil)
	f.worker("worker-a", "WORKER_CONCURRENCY=1")
	r := f.waitFor(run.ID, 60*time.Second, "finished", terminal)
	rows := f.actions(run.ID)
	if r.Status != "passed" || len(rows) != 3 {
		t.Fatalf("run = %s with %d rows, want passed with the 3 actions it was created with", r.Status, len(rows))
	}
	for _, a := range rows {
		if a.Status != "success" {
			t.Errorf("action %d = %s", a.ActionIndex, a.Status)
		}
	}
}

// Hole 7: a run never ends with rows still pending, even when PostgreSQL
// rejected the write of one of them.
func TestNoFinishedRunKeepsAPendingRow(t *testing.T) {
	f := newFleet(t, "LEASE_SECONDS=3")
	ctx := context.Background()
	db := f.db()
	// PostgreSQL rejects the result of the second action for a while.
	for _, q := range []string{
		`CREATE TABLE reject_writes (on_index int)`,
		`INSERT INTO reject_writes VALUES (1)`,
		`CREATE FUNCTION reject_write() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN
		   IF NEW.status <> 'pending' AND EXISTS (SELECT 1 FROM reject_writes WHERE on_index = NEW.action_index) THEN
		     RAISE EXCEPTION 'write rejected by the test';
		   END IF;
		   RETURN NEW;
		 END $$`,
		`CREATE TRIGGER reject_write BEFORE UPDATE ON run_actions FOR EACH ROW EXECUTE FUNCTION reject_write()`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	f.worker("worker-a", "WORKER_CONCURRENCY=1")
	id := f.createRun(f.slowRecording(4), map[string]any{"timingMode": "realistic", "timeout": 5000})
	f.waitFor(id, 60*time.Second, "third action done", func(r runView) bool { return f.successes(id) >= 2 })
	time.Sleep(2 * time.Second)
	if _, err := db.ExecContext(ctx, `DELETE FROM reject_writes`); err != nil {
		t.Fatal(err)
	}
	r := f.waitFor(id, 60*time.Second, "finished", terminal)
	for _, a := range f.actions(id) {
		if a.Status == "pending" {
			t.Fatalf("run ended %s with action %d still pending", r.Status, a.ActionIndex)
		}
	}
	if r.Status == "passed" && f.successes(id) != 4 {
		t.Fatalf("run passed with %d successful rows of 4", f.successes(id))
	}
}

// Hole 11: maxActionDelay caps every recorded pause.
func TestMaxActionDelayReachesTheReplay(t *testing.T) {
	f := newFleet(t)
	f.worker("worker-a", "WORKER_CONCURRENCY=1")
	// Three actions five seconds apart: realistic timing waits 10 s in all,
	// capped at 50 ms a pause it waits almost nothing.
	id := f.createRun(f.recordingWithGap(3, 5000), map[string]any{"timingMode": "realistic", "maxActionDelay": 50, "timeout": 5000})
	r := f.waitFor(id, 60*time.Second, "finished", terminal)
	if r.Status != "passed" {
		t.Fatalf("run = %+v", r)
	}
	var full struct {
		DurationMs int64 `json:"durationMs"`
	}
	f.api.call("GET", "/api/v1/runs/"+id, nil, 200, &full)
	if full.DurationMs >= 8000 { // uncapped it takes over 10 s
		t.Fatalf("run took %d ms: the 50 ms cap was not applied to the 5 s pauses", full.DurationMs)
	}
}
