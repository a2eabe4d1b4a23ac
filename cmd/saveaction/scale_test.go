package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saveaction/runner/fleetsim"
)

// A worker on the simulated replayer runs a real run end to end: the API,
// the stream, the claim, the row writer and settle are the real ones; no
// Chromium is needed (CHROME_BIN points nowhere, which stops a chromium
// worker at start); the start says so loudly.
func TestSimulatedWorkerRunsARunWithoutABrowser(t *testing.T) {
	f := newFleet(t, "WORKER_REPLAYER=simulated", "SIMULATION_FAILURE_RATE=0", "CHROME_BIN=/nonexistent/chromium")
	w := f.worker("sim-1")
	id := f.createRun(f.recordingWithGap(4, 100), map[string]any{"timingMode": "realistic"})
	r := f.waitFor(id, 60*time.Second, "finished", terminal)
	if r.Status != "passed" || r.ActionsExecuted != 4 || r.Attempt != 1 || r.WorkerNode != "sim-1" {
		t.Fatalf("run = %+v", r)
	}
	if r.DurationMs == nil || *r.DurationMs < 300 {
		t.Fatalf("duration %v ms: the recorded 300 ms were not replayed", r.DurationMs)
	}
	acts := f.actions(id)
	if len(acts) != 4 {
		t.Fatalf("%d action rows, want 4", len(acts))
	}
	for i, a := range acts {
		if a.ActionIndex != i || a.Status != "success" || a.DurationMs == nil {
			t.Fatalf("row %d = %+v", i, a)
		}
	}
	logs := w.logs.String()
	if !strings.Contains(logs, `"level":"warn"`) || !strings.Contains(logs, "SIMULATED REPLAYER") {
		t.Fatalf("the simulated replayer was not announced at WARN:\n%s", logs)
	}
}

// The fleet at scale, bounded for CI: 50 worker processes under every kind
// of churn, then the driver's checks from PostgreSQL (nothing lost, stuck,
// run twice at once, no duplicate or missing rows).
func TestFleetOfFiftyUnderChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level fleet test: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("the private PostgreSQL cluster needs root to run as the postgres user")
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(m) == 0 {
		t.Skip("initdb is not installed")
	}
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := fleetsim.Run(ctx, fleetsim.Config{
		Bin: binPath, Workers: 50, Slots: 2, APINodes: 2,
		Rate: 8, Duration: 45 * time.Second, Actions: 4, GapMs: 300,
		FailureRate: 0.05, CrashRate: 0.02,
		Kills: 3, Terms: 2, RedisRestart: true, PostgresRestart: true, Cancels: 20,
		Drain: 75 * time.Second, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("driver: %v\n%s", err, progress.String())
	}
	var out bytes.Buffer
	rep.Write(&out)
	t.Logf("\n%s\n%s", progress.String(), out.String())
	if rep.Created < 100 {
		t.Fatalf("only %d runs created", rep.Created)
	}
	for _, want := range []string{"kill -9", "SIGTERM", "Redis back", "PostgreSQL back", "cancel burst"} {
		if !strings.Contains(strings.Join(rep.Churn, "\n"), want) {
			t.Fatalf("churn %q did not happen: %v", want, rep.Churn)
		}
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("guarantees broken:\n%s", strings.Join(rep.Problems, "\n"))
	}
}
