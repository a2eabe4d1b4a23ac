package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/saveaction/runner/examples"
)

// The seed's worker line: level, worker, timestamp, message, jobId, runId.
var seedLogFields = []string{"level", "worker", "timestamp", "message", "jobId", "runId"}

var (
	uuidRE    = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	entryIDRE = regexp.MustCompile(`^[0-9]+-[0-9]+$`)
)

func TestLogLineShape(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			log := newLogger(&Config{LogFormat: format, LogLevel: slog.LevelDebug}, &buf)
			log = slog.New(withDefaultAttr(log.Handler(), slog.String("worker", "w-1")))
			log.Info("plain")
			log.With("worker", "w-1", "runId", "r").Warn("named once")
			log.Debug("named in the call", "worker", "w-1")
			log.WithGroup("g").Info("grouped", "k", "v")
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 4 {
				t.Fatalf("%d lines:\n%s", len(lines), buf.String())
			}
			for _, l := range lines {
				if n := strings.Count(l, "worker"); n != 1 {
					t.Errorf("worker appears %d times in %s", n, l)
				}
				if format == "text" {
					for _, k := range []string{"timestamp=", "level=", "message="} {
						if !strings.Contains(l, k) {
							t.Errorf("no %s in %s", k, l)
						}
					}
					continue
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("%s: %v", l, err)
				}
				checkSeedFields(t, m, "level", "worker", "timestamp", "message")
				if _, ok := m["time"]; ok {
					t.Errorf("slog's own time key left in %s", l)
				}
			}
			if format == "json" && !strings.Contains(lines[2], `"level":"debug"`) || format == "text" && !strings.Contains(lines[2], "level=debug") {
				t.Errorf("level not lower case: %s", lines[2])
			}
		})
	}
}

// checkSeedFields checks that m has each key with a well-formed value.
func checkSeedFields(t *testing.T, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		s, ok := m[k].(string)
		if !ok || s == "" {
			t.Errorf("line without %s: %v", k, m)
			continue
		}
		switch k {
		case "level":
			if s != "debug" && s != "info" && s != "warn" && s != "error" {
				t.Errorf("level %q: %v", s, m)
			}
		case "timestamp":
			if ts, err := time.Parse(logTimeLayout, s); err != nil || !strings.HasSuffix(s, "Z") || time.Since(ts) > time.Hour || time.Since(ts) < -time.Minute {
				t.Errorf("timestamp %q not a UTC millisecond time of now: %v", s, m)
			}
		case "runId":
			if !uuidRE.MatchString(s) {
				t.Errorf("runId %q: %v", s, m)
			}
		case "jobId":
			if !entryIDRE.MatchString(s) {
				t.Errorf("jobId %q is not a stream entry id: %v", s, m)
			}
		}
	}
}

// TestWorkerRunLogLinesCarryTheSeedFields runs a worker process with
// LOG_FORMAT=json and LOG_LEVEL=debug through a passing, a failing and a
// cancelled run: every line that is about a run (names it in any field)
// carries level, worker, timestamp, message, jobId and runId, each key
// once, and debug adds a line per executed action.
func TestWorkerRunLogLinesCarryTheSeedFields(t *testing.T) {
	f := newFleet(t, "LEASE_SECONDS=5")
	w := f.worker("log-w", "WORKER_CONCURRENCY=3", "LOG_FORMAT=json", "LOG_LEVEL=debug")

	passed := f.createRun(f.recordingWithGap(3, 100), map[string]any{"timingMode": "instant"})
	failing := bytes.ReplaceAll(examples.FailingRecording(), []byte("http://127.0.0.1:3002"), []byte(f.site.URL))
	failed := f.createRun(failing, map[string]any{"timingMode": "instant", "timeout": 1000})
	slow := f.createRun(f.slowRecording(20), map[string]any{"timingMode": "realistic"})
	f.waitFor(slow, 60*time.Second, "running", func(r runView) bool { return r.Status == "running" })
	for deadline := time.Now().Add(30 * time.Second); executed(f.actions(slow)) == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the slow run executed no action within 30s")
		}
	}
	f.api.call("POST", "/api/v1/runs/"+slow+"/cancel", nil, 200, nil)
	runs := map[string]string{passed: "passed", failed: "failed", slow: "cancelled"}
	for id, want := range runs {
		if r := f.waitFor(id, 60*time.Second, "finished", terminal); r.Status != want {
			t.Fatalf("run %s = %s, want %s", id, r.Status, want)
		}
	}
	// The settling line is written after the status; wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(w.logs.String(), `"message":"run finished"`) < len(runs) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}

	perRun := map[string]map[string]int{} // run id → message → count
	jobOf := map[string]string{}
	for _, line := range strings.Split(w.logs.String(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not a JSON line: %v\n%s", err, line)
			continue
		}
		checkSeedFields(t, m, "level", "worker", "timestamp", "message")
		about := ""
		for id := range runs {
			if strings.Contains(line, id) {
				about = id
			}
		}
		_, hasRun := m["runId"]
		if about == "" && !hasRun {
			continue
		}
		checkSeedFields(t, m, seedLogFields...)
		if m["runId"] != about {
			t.Errorf("line names run %s but its runId is %v: %s", about, m["runId"], line)
		}
		if m["worker"] != "log-w" {
			t.Errorf("worker %v: %s", m["worker"], line)
		}
		for _, k := range seedLogFields {
			if n := strings.Count(line, `"`+k+`":`); n != 1 {
				t.Errorf("key %s appears %d times: %s", k, n, line)
			}
		}
		if j, ok := jobOf[about]; ok && j != m["jobId"] {
			t.Errorf("run %s logged under jobs %s and %v", about, j, m["jobId"])
		}
		jobOf[about], _ = m["jobId"].(string)
		if perRun[about] == nil {
			perRun[about] = map[string]int{}
		}
		msg, _ := m["message"].(string)
		perRun[about][msg]++
	}
	for id := range runs {
		got := perRun[id]
		if got["run started"] != 1 || got["run finished"] != 1 {
			t.Errorf("run %s (%s): lines %v, want one run started and one run finished", id, runs[id], got)
		}
		// A debug line per action started and per action executed.
		if n := executed(f.actions(id)); n == 0 || got["action finished"] < n || got["action started"] < n {
			t.Errorf("run %s (%s): %d action finished and %d action started lines, %d actions executed",
				id, runs[id], got["action finished"], got["action started"], n)
		}
	}
	if t.Failed() {
		t.Logf("worker log:\n%s", w.logs.String())
	}
}

// executed counts the actions that ran (not pending, not skipped).
func executed(acts []actionView) int {
	n := 0
	for _, a := range acts {
		if a.Status != "pending" && a.Status != "skipped" {
			n++
		}
	}
	return n
}
