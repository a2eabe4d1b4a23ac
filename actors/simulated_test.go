package actors_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/saveaction/runner/actors"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/simulate"
)

// startSimulated starts a coordinator whose runs replay on the simulated
// replayer instead of Chromium.
func (e *env) startSimulated(cfg simulate.Config, concurrency int, m *actors.Metrics) {
	e.t.Helper()
	rep, err := simulate.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	w, err := actors.StartWorker(context.Background(), actors.Deps{
		System: e.sys, Runs: e.runs, Queue: e.q, Replayer: rep, Log: e.log, Worker: "sim-" + e.prefix[len(e.prefix)-9:len(e.prefix)-1],
		Concurrency: concurrency, Signal: e.signal, Metrics: m,
		ScreenshotDir: e.t.TempDir(), VideoDir: e.t.TempDir(), FilesDir: e.t.TempDir(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = w.Shutdown(ctx, 0)
	})
}

func TestSimulatedRunWritesItsRowsAsARealRunDoes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startSimulated(simulate.Config{ActionTime: 5 * time.Millisecond}, 3, nil)
	// Realistic timing on recorded gaps of 40 ms: the run takes the recording's time.
	id := e.createRun(e.recording(6, 40), "realistic", nil)
	run := e.waitRun(id, 30*time.Second)
	if run.Status != persistence.StatusPassed || run.Attempt != 1 || run.ActionsExecuted != 6 {
		t.Fatalf("run = %s attempt %d executed %d; error %v", run.Status, run.Attempt, run.ActionsExecuted, run.ErrorMessage)
	}
	if run.DurationMs == nil || *run.DurationMs < 200 {
		t.Fatalf("duration %v ms, want at least the recorded 200 ms", run.DurationMs)
	}
	rows := e.actions(id)
	if len(rows) != 6 {
		t.Fatalf("%d rows, want 6", len(rows))
	}
	for _, r := range rows {
		if r.Status != persistence.ActionSuccess || r.Attempt != 1 || r.DurationMs == nil || r.StartedAt == nil {
			t.Errorf("row %d = %s attempt %d", r.ActionIndex, r.Status, r.Attempt)
		}
	}
}

func TestSimulatedFailureIsATestFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	m := actors.NewMetrics(reg)
	e.startSimulated(simulate.Config{FailureRate: 1}, 2, m)
	id := e.createRun(e.recording(5, 0), "instant", nil)
	run := e.waitRun(id, 30*time.Second)
	if run.Status != persistence.StatusFailed || run.Attempt != 1 || run.ErrorMessage == nil || *run.ErrorMessage != simulate.FailureMessage {
		t.Fatalf("run = %s attempt %d error %v", run.Status, run.Attempt, run.ErrorMessage)
	}
	failed, skipped := 0, 0
	for _, r := range e.actions(id) {
		switch r.Status {
		case persistence.ActionFailed:
			failed++
		case persistence.ActionSkipped:
			skipped++
		case persistence.ActionPending:
			t.Fatalf("row %d still pending", r.ActionIndex)
		}
	}
	if failed != 1 || run.ActionsFailed != 1 {
		t.Fatalf("%d failed rows (run says %d), want 1", failed, run.ActionsFailed)
	}
	if got := failures(t, reg, actors.FailureTest); got != 1 {
		t.Fatalf("test failures counted %v, want 1", got)
	}
}

func TestSimulatedCrashTakesTheBrowserCrashPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	m := actors.NewMetrics(reg)
	e.startSimulated(simulate.Config{CrashRate: 1}, 1, m)
	id := e.createRun(e.recording(3, 0), "instant", nil)
	run := e.waitRun(id, 60*time.Second)
	if run.Status != persistence.StatusFailed || run.ErrorMessage == nil ||
		!contains(*run.ErrorMessage, "browser crashed") || !contains(*run.ErrorMessage, simulate.CrashMessage) {
		t.Fatalf("run = %s error %v", run.Status, run.ErrorMessage)
	}
	// The first try and two restarts on a "fresh browser", as after real crashes.
	if run.Attempt != 3 {
		t.Fatalf("attempt %d, want 3", run.Attempt)
	}
	for _, r := range e.actions(id) {
		if r.Status == persistence.ActionPending {
			t.Fatalf("row %d still pending", r.ActionIndex)
		}
	}
	if got := failures(t, reg, actors.FailureBrowserCrash); got != 1 {
		t.Fatalf("browser_crash failures counted %v, want 1", got)
	}
}

// failures reads the failed-runs counter of one reason class, waiting a
// moment for it to leave 0 (it counts just after the row is written).
func failures(t *testing.T, reg *prometheus.Registry, class string) float64 {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n := failuresNow(t, reg, class); n > 0 {
			return n
		}
	}
	return failuresNow(t, reg, class)
}

func failuresNow(t *testing.T, reg *prometheus.Registry, class string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != actors.MetricRunFailures {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == class {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
