package actors_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/saveaction/runner/actors"
	"github.com/saveaction/runner/browser"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/persistence/pgtest"
	"github.com/saveaction/runner/queue"
	"github.com/saveaction/runner/queue/redistest"
)

const page = `<!doctype html><html><head><title>runtime test</title></head><body>
<input id="name"><button id="go" onclick="document.getElementById('out').textContent='hi '+document.getElementById('name').value">Go</button>
<p id="out"></p></body></html>`

// env is one test's world: its own database, Redis prefix, page server and actor system.
type env struct {
	t      testing.TB
	db     *bun.DB
	rdb    *redis.Client
	prefix string
	q      *queue.Queue
	runs   *persistence.Runs
	site   *httptest.Server
	sys    *actor.ActorSystem
	user   uuid.UUID
	log    *slog.Logger

	mu     sync.Mutex
	events []actors.Event
	notify chan struct{}
}

func newEnv(t testing.TB) *env {
	t.Helper()
	db, _ := pgtest.New(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	e := &env{t: t, db: db, prefix: "test:actors:" + hex.EncodeToString(b) + ":",
		rdb:    redis.NewClient(redistest.Options(t)),
		notify: make(chan struct{}, 1),
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if testing.Verbose() {
		e.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e.q = queue.New(e.rdb, e.prefix)
	e.runs = &persistence.Runs{DB: db}
	e.site = httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, page)
	}))
	e.sys = actors.NewSystem(e.log)
	t.Cleanup(func() {
		e.site.Close()
		ctx := context.Background()
		iter := e.rdb.Scan(ctx, 0, e.prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			e.rdb.Del(ctx, iter.Val())
		}
		_ = e.rdb.Close()
	})
	u := &persistence.User{Email: uuid.NewString() + "@example.com"}
	if _, err := db.NewInsert().Model(u).Returning("*").Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.user = u.ID
	return e
}

func (e *env) signal(ev actors.Event) {
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

// waitEvent waits for an event matching cond.
func (e *env) waitEvent(within time.Duration, what string, cond func(actors.Event) bool) actors.Event {
	e.t.Helper()
	deadline := time.After(within)
	for {
		e.mu.Lock()
		for _, ev := range e.events {
			if cond(ev) {
				e.mu.Unlock()
				return ev
			}
		}
		e.mu.Unlock()
		select {
		case <-e.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			e.t.Fatalf("no %s event within %s; events: %+v", what, within, e.events)
		}
	}
}

// recording returns a recording of n actions on the test page, spaced gap ms apart.
func (e *env) recording(n int, gapMs float64) []byte {
	acts := make([]map[string]any, 0, n)
	for i := 0; i < n; i++ {
		a := map[string]any{"id": fmt.Sprintf("act_%03d", i+1), "timestamp": float64(i) * gapMs, "url": e.site.URL + "/"}
		if i%2 == 0 {
			a["type"], a["value"] = "input", fmt.Sprintf("v%d", i)
			a["selector"] = map[string]any{"id": "name", "css": "#name", "priority": []string{"id", "css"}}
		} else {
			a["type"] = "click"
			a["selector"] = map[string]any{"id": "go", "css": "#go", "priority": []string{"id", "css"}}
		}
		acts = append(acts, a)
	}
	rec := map[string]any{"id": "rec_" + uuid.NewString()[:8], "version": "1.0.0", "testName": "runtime", "url": e.site.URL + "/",
		"startTime": "2026-01-01T00:00:00Z", "viewport": map[string]any{"width": 800, "height": 600}, "userAgent": "test", "actions": acts}
	raw, _ := json.Marshal(rec)
	return raw
}

// createRun writes a recording and a queued run of data with its pending
// action rows and queues it, the way the API does.
func (e *env) createRun(data []byte, timingMode string, options map[string]any) uuid.UUID {
	e.t.Helper()
	ctx := context.Background()
	rec := &persistence.Recording{UserID: e.user, OriginalID: uuid.NewString(), Name: "r", URL: e.site.URL, Data: data, Tags: []string{}, Variables: []string{}}
	if err := persistence.CreateRecording(ctx, e.db, rec); err != nil {
		e.t.Fatal(err)
	}
	o := persistence.DefaultRunOptions()
	o.TimingMode, o.Timeout = timingMode, 5000
	if options != nil {
		raw, _ := json.Marshal(options)
		if err := json.Unmarshal(raw, &o); err != nil {
			e.t.Fatal(err)
		}
	}
	run := &persistence.Run{UserID: e.user, RecordingID: rec.ID, RecordingVersion: rec.Version, RecordingName: "r",
		RecordingURL: e.site.URL, Variables: map[string]string{}, TriggeredBy: "api"}
	if err := o.ApplyTo(run); err != nil {
		e.t.Fatal(err)
	}
	var parsed struct {
		Actions []struct{ ID, Type string } `json:"actions"`
	}
	_ = json.Unmarshal(data, &parsed)
	refs := make([]persistence.ActionRef, len(parsed.Actions))
	for i, a := range parsed.Actions {
		refs[i] = persistence.ActionRef{ID: a.ID, Type: a.Type}
	}
	created, _, err := persistence.CreateRun(ctx, e.db, persistence.NewRun{Run: run, Actions: refs, Now: time.Now(),
		Enqueue: func(ctx context.Context, id uuid.UUID) (string, string, error) {
			entry, err := e.q.Enqueue(ctx, id)
			return e.q.Stream(), entry, err
		}})
	if err != nil {
		e.t.Fatal(err)
	}
	return created.ID
}

type workerOpts struct {
	name        string
	concurrency int
	lease       time.Duration
	launch      actors.LaunchFunc
}

// startWorker starts a coordinator with a pool of real Chromium.
func (e *env) startWorker(o workerOpts) (*actors.Worker, *actors.Pool) {
	e.t.Helper()
	if o.name == "" {
		o.name = "w-" + uuid.NewString()[:6]
	}
	if o.launch == nil {
		o.launch = func(ctx context.Context) (*browser.Browser, error) {
			return browser.Launch(ctx, browser.LaunchOptions{Headless: true})
		}
	}
	pool := actors.NewPool(actors.PoolConfig{Launch: o.launch})
	w, err := actors.StartWorker(context.Background(), actors.Deps{
		System: e.sys, Runs: e.runs, Queue: e.q, Pool: pool, Log: e.log, Worker: o.name,
		Concurrency: o.concurrency, Lease: o.lease, Signal: e.signal,
		ScreenshotDir: e.t.TempDir(), VideoDir: e.t.TempDir(), FilesDir: e.t.TempDir(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = w.Shutdown(ctx, 0)
		pool.Close()
	})
	return w, pool
}

func (e *env) waitRun(id uuid.UUID, within time.Duration) *persistence.Run {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := e.runs.Get(context.Background(), id)
		if err != nil {
			e.t.Fatal(err)
		}
		if persistence.IsTerminal(r.Status) {
			return r
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("run %s still %s after %s", id, r.Status, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) actions(id uuid.UUID) []persistence.RunAction {
	var rows []persistence.RunAction
	if err := e.db.NewSelect().Model(&rows).Where("run_id = ?", id).Order("action_index").Scan(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	return rows
}

func processAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !containsState(st, 'Z')
}

func containsState(stat []byte, s byte) bool {
	for i := len(stat) - 1; i >= 0; i-- {
		if stat[i] == ')' {
			return i+2 < len(stat) && stat[i+2] == s
		}
	}
	return false
}

func TestRunPassesWithOneRowPerAction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker(workerOpts{concurrency: 2})
	id := e.createRun(e.recording(6, 10), "instant", nil)
	run := e.waitRun(id, 60*time.Second)
	if run.Status != persistence.StatusPassed || run.Attempt != 1 || run.ActionsExecuted != 6 {
		t.Fatalf("run = %s attempt %d executed %d; error %v", run.Status, run.Attempt, run.ActionsExecuted, run.ErrorMessage)
	}
	rows := e.actions(id)
	if len(rows) != 6 {
		t.Fatalf("%d rows, want 6", len(rows))
	}
	for _, r := range rows {
		if r.Status != persistence.ActionSuccess || r.Attempt != 1 || r.DurationMs == nil {
			t.Errorf("row %d = %s attempt %d", r.ActionIndex, r.Status, r.Attempt)
		}
	}
	// The result is written first (PostgreSQL is the truth), then the entry acknowledged.
	n, _ := e.rdb.XLen(context.Background(), e.q.Stream()).Result()
	for deadline := time.Now().Add(5 * time.Second); n != 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		n, _ = e.rdb.XLen(context.Background(), e.q.Stream()).Result()
	}
	if n != 0 {
		t.Fatalf("stream still holds %d entries after the run finished", n)
	}
}

func TestCancelRunningRunStopsItWithPartialResults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, pool := e.startWorker(workerOpts{concurrency: 1})
	// Realistic timing, one action a second: the run lasts ten seconds.
	id := e.createRun(e.recording(10, 1000), "realistic", map[string]any{"isolation": "browser"})
	e.waitEvent(30*time.Second, "second action", func(ev actors.Event) bool {
		return ev.Kind == "action" && ev.RunID == id.String() && ev.Detail == "act_002"
	})
	pids := pool.PIDs()
	if len(pids) != 1 {
		t.Fatalf("pool holds %d browsers, want the run's own", len(pids))
	}
	ctx := context.Background()
	if _, err := e.db.NewUpdate().Model((*persistence.Run)(nil)).Set("cancel_requested_at = now()").Where("id = ?", id).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	run, _ := e.runs.Get(ctx, id)
	c := &actors.Canceller{System: e.sys, Runs: e.runs}
	start := time.Now()
	confirmed, err := c.CancelRun(ctx, run, 5*time.Second)
	took := time.Since(start)
	if err != nil || !confirmed {
		t.Fatalf("cancel confirmed=%v err=%v after %s", confirmed, err, took)
	}
	t.Logf("cancel confirmed in %s", took)
	run = e.waitRun(id, 5*time.Second)
	if run.Status != persistence.StatusCancelled {
		t.Fatalf("status %s, want cancelled", run.Status)
	}
	rows := e.actions(id)
	var done, skipped int
	for _, r := range rows {
		switch r.Status {
		case persistence.ActionSuccess:
			done++
		case persistence.ActionSkipped:
			skipped++
			if r.Reason == nil || *r.Reason != "cancelled" {
				t.Errorf("row %d skipped with reason %v, want cancelled", r.ActionIndex, r.Reason)
			}
		}
	}
	if done < 2 || done+skipped != 10 || skipped == 0 {
		t.Fatalf("rows: %d done, %d skipped of %d; want partial results", done, skipped, len(rows))
	}
	deadline := time.Now().Add(3 * time.Second)
	for processAlive(pids[0]) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if processAlive(pids[0]) {
		t.Fatalf("the cancelled run's Chromium (pid %d) is still alive", pids[0])
	}
}

func TestBrowserCrashRestartsRunOnFreshBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, pool := e.startWorker(workerOpts{concurrency: 1})
	id := e.createRun(e.recording(6, 700), "realistic", nil)
	e.waitEvent(30*time.Second, "first action", func(ev actors.Event) bool {
		return ev.Kind == "action" && ev.RunID == id.String() && ev.Attempt == 1
	})
	for _, pid := range pool.PIDs() {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	e.waitEvent(30*time.Second, "crash", func(ev actors.Event) bool { return ev.Kind == "crashed" && ev.RunID == id.String() })
	run := e.waitRun(id, 60*time.Second)
	if run.Status != persistence.StatusPassed || run.Attempt != 2 {
		t.Fatalf("run after a browser crash = %s attempt %d (%v), want passed as attempt 2", run.Status, run.Attempt, run.ErrorMessage)
	}
	if rows := e.actions(id); len(rows) != 6 {
		t.Fatalf("%d rows, want 6", len(rows))
	}
}

func TestRepeatedCrashesFailTheRunWithTheCrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	launches := 0
	var mu sync.Mutex
	e.startWorker(workerOpts{concurrency: 1, launch: func(ctx context.Context) (*browser.Browser, error) {
		mu.Lock()
		launches++
		mu.Unlock()
		return nil, fmt.Errorf("chromium exited at start-up")
	}})
	id := e.createRun(e.recording(2, 10), "instant", nil)
	run := e.waitRun(id, 60*time.Second)
	if run.Status != persistence.StatusFailed || run.ErrorMessage == nil {
		t.Fatalf("run = %s, want failed", run.Status)
	}
	if msg := *run.ErrorMessage; !contains(msg, "browser crashed") || !contains(msg, "chromium exited at start-up") {
		t.Fatalf("error %q does not carry the crash", msg)
	}
	mu.Lock()
	defer mu.Unlock()
	if launches != 3 || run.Attempt != 3 {
		t.Fatalf("%d launches over %d attempts, want 3 (first try and two restarts)", launches, run.Attempt)
	}
}

func contains(s, sub string) bool { return len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0) }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// abandon makes a run look like its worker died mid-run: pulled by a ghost
// consumer, started as attempt n with a lease already expired.
func (e *env) abandon(id uuid.UUID, attempts int) {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.q.Pull(ctx, "ghost", 10, 100*time.Millisecond); err != nil {
		e.t.Fatal(err)
	}
	// Attempt 1 started, then attempts-1 take-overs: each a failed delivery.
	if _, err := e.runs.Start(ctx, id, 0, persistence.Owner{Worker: "ghost", ActorID: "ghost"}, time.Minute); err != nil {
		e.t.Fatal(err)
	}
	_, err := e.db.NewUpdate().Model((*persistence.Run)(nil)).
		Set("attempt = ?, deliveries = ?", attempts, attempts-1).
		Set("lease_expires_at = now() - interval '1 minute'").
		Where("id = ?", id).Exec(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
}

func TestAbandonedRunIsReclaimedAsNextAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.createRun(e.recording(4, 10), "instant", nil)
	e.abandon(id, 1)
	e.startWorker(workerOpts{concurrency: 1, lease: 2 * time.Second}) // sub-second leases stop runs on a loaded machine
	run := e.waitRun(id, 60*time.Second)
	if run.Status != persistence.StatusPassed || run.Attempt != 2 {
		t.Fatalf("reclaimed run = %s attempt %d, want passed as attempt 2", run.Status, run.Attempt)
	}
	if rows := e.actions(id); len(rows) != 4 || rows[0].Attempt != 2 {
		t.Fatalf("rows = %d (attempt %d), want 4 rows of attempt 2", len(rows), rows[0].Attempt)
	}
}

func TestRunFailsAsWorkerLostAfterMaxDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.createRun(e.recording(2, 10), "instant", nil)
	e.abandon(id, 3)
	e.startWorker(workerOpts{concurrency: 1, lease: 2 * time.Second}) // sub-second leases stop runs on a loaded machine
	run := e.waitRun(id, 30*time.Second)
	if run.Status != persistence.StatusFailed || run.ErrorMessage == nil || !contains(*run.ErrorMessage, "worker lost") {
		t.Fatalf("run = %s (%v), want failed with worker lost", run.Status, run.ErrorMessage)
	}
	// The run row is failed first (PostgreSQL is the truth), then the entry moves.
	var dead []redis.XMessage
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if dead, err = e.rdb.XRange(context.Background(), e.q.DeadStream(), "-", "+").Result(); err != nil || len(dead) > 0 {
			break
		}
	}
	if err != nil || len(dead) != 1 || dead[0].Values["runId"] != id.String() {
		t.Fatalf("dead letters = %+v, %v", dead, err)
	}
}

func TestNoRunLostWhenRedisForgetsTheStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker(workerOpts{concurrency: 2, lease: 2 * time.Second})
	rec := &actors.Reconciler{Runs: e.runs, Queue: e.q, Redis: e.rdb, LockKey: e.prefix + "reconciler:lock", Owner: "t",
		Lease: time.Second, Interval: 300 * time.Millisecond, Log: e.log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rec.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var ids []uuid.UUID
	for i := 0; i < 12; i++ {
		ids = append(ids, e.createRun(e.recording(4, 150), "realistic", nil))
	}
	e.waitEvent(30*time.Second, "a first run started", func(ev actors.Event) bool { return ev.Kind == "started" })
	// As after a Redis restart without persistence: the stream and its group are gone.
	if err := e.rdb.Del(context.Background(), e.q.Stream()).Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		run := e.waitRun(id, 120*time.Second)
		if run.Status != persistence.StatusPassed {
			t.Errorf("run %s = %s (%v)", id, run.Status, run.ErrorMessage)
		}
		if rows := e.actions(id); len(rows) != 4 {
			t.Errorf("run %s has %d rows, want 4", id, len(rows))
		}
	}
}

// TestMissedCancelMessageIsCaughtAtLeaseRenewal: no CancelRun reaches the
// actor (the API node could not deliver it); the flag alone ends the run.
func TestMissedCancelMessageIsCaughtAtLeaseRenewal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startWorker(workerOpts{concurrency: 1, lease: 2 * time.Second})
	id := e.createRun(e.recording(10, 1000), "realistic", nil)
	e.waitEvent(30*time.Second, "first action", func(ev actors.Event) bool {
		return ev.Kind == "action" && ev.RunID == id.String()
	})
	if _, err := e.db.NewUpdate().Model((*persistence.Run)(nil)).Set("cancel_requested_at = now()").Where("id = ?", id).Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	run := e.waitRun(id, 10*time.Second)
	if run.Status != persistence.StatusCancelled {
		t.Fatalf("status %s, want cancelled from the lease renewal", run.Status)
	}
	if run.ActionsSkipped == 0 {
		t.Fatalf("no action skipped: the run was not cut short (%+v)", run)
	}
}
