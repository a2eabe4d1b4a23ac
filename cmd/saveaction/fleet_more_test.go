package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/saveaction/runner/persistence"
)

// chromiumUnder lists Chromium processes descending from pid.
func chromiumUnder(pid int) []int {
	parent := map[int]int{}
	isChrome := map[int]bool{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(stat), ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		parent[p], _ = strconv.Atoi(f[1])
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		isChrome[p] = strings.Contains(string(cmd), "saveaction-chromium-")
	}
	var out []int
	for p := range isChrome {
		if !isChrome[p] {
			continue
		}
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func TestCancelThroughTheAPIKillsTheBrowserAcrossNodes(t *testing.T) {
	f := newFleet(t)
	w := f.worker("worker-a", "WORKER_CONCURRENCY=1")
	id := f.createRun(f.slowRecording(10), map[string]any{"timingMode": "realistic", "timeout": 5000, "isolation": "browser"})
	f.waitFor(id, 60*time.Second, "two actions done", func(r runView) bool {
		if r.Status != "running" {
			return false
		}
		n := 0
		for _, a := range f.actions(id) {
			if a.Status == "success" {
				n++
			}
		}
		return n >= 2
	})
	if len(chromiumUnder(w.cmd.Process.Pid)) == 0 {
		t.Fatal("no Chromium under the worker while its run is running")
	}
	start := time.Now()
	var got runView
	f.api.call("POST", "/api/v1/runs/"+id+"/cancel", nil, 200, &got)
	took := time.Since(start)
	t.Logf("cancel answered 200 in %s", took)
	if got.Status != "cancelled" {
		t.Fatalf("cancel answered with status %s, want cancelled", got.Status)
	}
	acts := f.actions(id)
	var done, skipped int
	for _, a := range acts {
		switch a.Status {
		case "success":
			done++
		case "skipped":
			skipped++
		}
	}
	if done < 2 || skipped == 0 || done+skipped != len(acts) {
		t.Fatalf("partial results: %d done, %d skipped of %d", done, skipped, len(acts))
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(chromiumUnder(w.cmd.Process.Pid)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := chromiumUnder(w.cmd.Process.Pid); len(left) > 0 {
		t.Fatalf("the cancelled run's browser is still running: %v", left)
	}
	// A finished run refuses a second cancel.
	f.api.call("POST", "/api/v1/runs/"+id+"/cancel", nil, 400, nil)
}

func TestTwoHundredRunsOverTwoWorkersNoneLostOrDuplicated(t *testing.T) {
	f := newFleet(t, "LEASE_SECONDS=10")
	f.worker("worker-a", "WORKER_CONCURRENCY=2")
	f.worker("worker-b", "WORKER_CONCURRENCY=2")
	var rec struct {
		ID string `json:"id"`
	}
	f.api.call("POST", "/api/v1/recordings", f.slowRecording(3), 201, &rec)
	const n = 200
	ids := make([]string, n)
	start := time.Now()
	for i := range ids {
		var run struct {
			ID string `json:"id"`
		}
		f.api.call("POST", "/api/v1/runs", map[string]any{"recordingId": rec.ID, "options": map[string]any{"timingMode": "instant", "timeout": 5000}}, 201, &run)
		ids[i] = run.ID
	}
	byWorker := map[string]int{}
	for _, id := range ids {
		r := f.waitFor(id, 5*time.Minute, "finished", func(r runView) bool { return persistence.IsTerminal(persistence.Status(r.Status)) })
		if r.Status != "passed" || r.Attempt != 1 || r.ActionsExecuted != 3 {
			t.Errorf("run %s = %+v", id, r)
		}
		byWorker[r.WorkerNode]++
	}
	t.Logf("%d runs in %s over 2 workers x 2 slots: %v", n, time.Since(start), byWorker)
	if byWorker["worker-a"] == 0 || byWorker["worker-b"] == 0 {
		t.Errorf("runs per worker %v: both workers should have worked", byWorker)
	}
	// Exactly one row per action per run, straight from the database.
	db, err := persistence.Open(context.Background(), f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, runs int
	if err := db.NewRaw("SELECT count(*), count(DISTINCT run_id) FROM run_actions").Scan(context.Background(), &rows, &runs); err != nil {
		t.Fatal(err)
	}
	if rows != 3*n || runs != n {
		t.Fatalf("%d action rows over %d runs, want %d over %d", rows, runs, 3*n, n)
	}
}

// TestRedisRestartUnderLoadLosesNoRun restarts a Redis server of the test's
// own (no persistence, so the stream is gone) while runs are queued and running.
func TestRedisRestartUnderLoadLosesNoRun(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	port := freePort(t)
	startRedis := func() *exec.Cmd {
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
		defer rdb.Close()
		for i := 0; i < 100 && rdb.Ping(context.Background()).Err() != nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		return cmd
	}
	srv := startRedis()
	var mu sync.Mutex
	t.Cleanup(func() { mu.Lock(); _ = srv.Process.Kill(); _ = srv.Wait(); mu.Unlock() })

	f := newFleet(t, fmt.Sprintf("REDIS_URL=redis://127.0.0.1:%d/0", port), "LEASE_SECONDS=3")
	f.worker("worker-a", "WORKER_CONCURRENCY=2")
	var rec struct {
		ID string `json:"id"`
	}
	f.api.call("POST", "/api/v1/recordings", f.slowRecording(3), 201, &rec)
	var ids []string
	for i := 0; i < 30; i++ {
		var run struct {
			ID string `json:"id"`
		}
		f.api.call("POST", "/api/v1/runs", map[string]any{"recordingId": rec.ID, "options": map[string]any{"timingMode": "realistic", "timeout": 5000}}, 201, &run)
		ids = append(ids, run.ID)
	}
	f.waitFor(ids[0], 60*time.Second, "first run finished", func(r runView) bool { return persistence.IsTerminal(persistence.Status(r.Status)) })
	mu.Lock()
	_ = srv.Process.Kill()
	_ = srv.Wait()
	srv = startRedis()
	mu.Unlock()
	restarted := time.Now()
	for _, id := range ids {
		r := f.waitFor(id, 4*time.Minute, "finished", func(r runView) bool { return persistence.IsTerminal(persistence.Status(r.Status)) })
		if r.Status != "passed" {
			t.Errorf("run %s = %+v", id, r)
		}
		if acts := f.actions(id); len(acts) != 3 {
			t.Errorf("run %s has %d action rows, want 3", id, len(acts))
		}
	}
	t.Logf("all %d runs passed; the last %s after the Redis restart", len(ids), time.Since(restarted))
}

// TestKilledChromiumRestartsTheRunOnAFreshBrowser kills the worker
// process's Chromium mid-run: the supervisor restarts the run as attempt 2
// on a new browser and it passes, with one row per action.
func TestKilledChromiumRestartsTheRunOnAFreshBrowser(t *testing.T) {
	f := newFleet(t)
	w := f.worker("worker-a", "WORKER_CONCURRENCY=1")
	id := f.createRun(f.slowRecording(6), map[string]any{"timingMode": "realistic", "timeout": 5000})
	f.waitFor(id, 60*time.Second, "first action done", func(r runView) bool {
		return r.Status == "running" && len(f.actions(id)) > 0 && f.actions(id)[0].Status == "success"
	})
	killed := 0
	for _, pid := range chromiumUnder(w.cmd.Process.Pid) {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	if killed == 0 {
		t.Fatal("no Chromium found under the worker")
	}
	run := f.waitFor(id, 90*time.Second, "finished", func(r runView) bool { return persistence.IsTerminal(persistence.Status(r.Status)) })
	if run.Status != "passed" || run.Attempt != 2 {
		t.Fatalf("run after its browser was killed = %+v, want passed as attempt 2", run)
	}
	if n := len(f.actions(id)); n != 6 {
		t.Fatalf("%d action rows, want 6", n)
	}
}
