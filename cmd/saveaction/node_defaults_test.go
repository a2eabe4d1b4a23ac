package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/saveaction/runner/persistence"
)

// withoutEnv drops the variables named keys from env.
func withoutEnv(env []string, keys ...string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, key := range keys {
			drop = drop || k == key
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

// logLine waits for the first JSON log line of p whose message is msg and
// returns it, failing if p exits first or nothing comes within the deadline.
func logLine(t *testing.T, p *proc, msg string, within time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, line := range strings.Split(p.logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
				return m
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before logging %q:\n%s", p.name, p.cmd.ProcessState, msg, p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s logged no %q within %s:\n%s", p.name, msg, within, p.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports whether p is still running.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// TestTwoWorkersOnOneHostWithDefaults is hole 9 of issue 8: two workers
// started on one host with nothing but the shared settings both come up,
// under distinct names, each with its metrics endpoint, and both take runs.
func TestTwoWorkersOnOneHostWithDefaults(t *testing.T) {
	f := newFleet(t)
	// The fleet pins METRICS_PORT=0 and its tests name their workers; this
	// test wants the defaults of both.
	f.env = withoutEnv(f.env, "METRICS_PORT", "WORKER_NAME")
	var workers []*proc
	names := map[string]bool{}
	metricsAt := map[string]bool{}
	for range 2 {
		w := f.start("worker", "WORKER_CONCURRENCY=1", "HOST=127.0.0.1")
		started := logLine(t, w, "worker started", 60*time.Second)
		name, _ := started["worker"].(string)
		if name == "" || names[name] {
			t.Fatalf("worker name %q is empty or taken (names so far %v)", name, names)
		}
		names[name] = true
		addr, _ := logLine(t, w, "worker metrics listening", 5*time.Second)["address"].(string)
		metricsAt[addr] = true
		workers = append(workers, w)
	}
	if len(metricsAt) != 2 {
		t.Fatalf("metrics addresses %v, want two distinct", metricsAt)
	}
	host, _ := os.Hostname()
	for name := range names {
		if host != "" && !strings.Contains(name, host) {
			t.Errorf("default worker name %q does not name the host %q", name, host)
		}
	}
	for addr := range metricsAt {
		resp, err := nethttp.Get(addr)
		if err != nil {
			t.Fatalf("scrape %s: %v", addr, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "go_goroutines") {
			t.Fatalf("scrape %s: %d %.200s", addr, resp.StatusCode, body)
		}
	}

	// One slot each and two slow runs: each worker must take one.
	var ids []string
	for range 2 {
		ids = append(ids, f.createRun(f.slowRecording(4), map[string]any{"timingMode": "realistic", "timeout": 5000}))
	}
	ran := map[string]bool{}
	for _, id := range ids {
		r := f.waitFor(id, 90*time.Second, "finished", func(r runView) bool { return persistence.IsTerminal(persistence.Status(r.Status)) })
		if r.Status != "passed" {
			t.Fatalf("run %s = %+v, want passed", id, r)
		}
		ran[r.WorkerNode] = true
	}
	for name := range names {
		if !ran[name] {
			t.Errorf("worker %s took no run (runs went to %v)", name, ran)
		}
	}
	for _, w := range workers {
		if !w.alive() {
			t.Errorf("%s exited:\n%s", w.name, w.logs.String())
		}
	}
}

// TestExplicitMetricsPortTakenStopsStartUp: the fallback is for the default
// only; a port an operator chose and cannot have is an error naming it.
func TestExplicitMetricsPortTakenStopsStartUp(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "worker")
	cmd.Env = append(withoutEnv(os.Environ(), "WORKER_NAME"), "HOST=127.0.0.1", fmt.Sprintf("METRICS_PORT=%d", port),
		"REDIS_PREFIX=metricsport:"+randHex(4)+":", "DATABASE_URL=postgres://root@127.0.0.1:5432/postgres?sslmode=disable")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("worker on a taken METRICS_PORT: err %v, want exit status 1\n%s", err, out)
	}
	if want := fmt.Sprintf("METRICS_PORT %d", port); !strings.Contains(string(out), want) || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("the message does not name %s and the cause:\n%s", want, out)
	}
}
