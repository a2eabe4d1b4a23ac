package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/saveaction/runner/examples"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue/redistest"
)

// fleet is an API process and worker processes sharing one database and
// Redis prefix: the real thing, as separate OS processes, for chaos tests.
type fleet struct {
	t      *testing.T
	env    []string
	dsn    string
	prefix string
	site   *httptest.Server
	api    *devNode // reuses the HTTP helpers
	mu     sync.Mutex
	procs  []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newFleet(t *testing.T, extraEnv ...string) *fleet {
	t.Helper()
	if testing.Short() {
		t.Skip("process-level test: skipped with -short")
	}
	id := randHex(4)
	f := &fleet{t: t,
		dsn:    "postgres://root@127.0.0.1:5432/sa_fleet_" + id + "?sslmode=disable",
		prefix: "fleet:" + id + ":",
		site:   httptest.NewServer(nethttp.FileServerFS(examples.Site())),
	}
	storage := t.TempDir()
	f.env = append(os.Environ(), "DATABASE_URL="+f.dsn, "REDIS_URL="+redistest.URL(), "REDIS_PREFIX="+f.prefix, "LOG_FORMAT=json",
		"VIDEO_STORAGE_PATH="+filepath.Join(storage, "videos"),
		"SCREENSHOT_STORAGE_PATH="+filepath.Join(storage, "screenshots"),
		"FILES_PATH="+filepath.Join(storage, "files"), "ARTIFACT_STORE="+filepath.Join(storage, "artifacts"), "METRICS_PORT=0",
		"RATE_LIMIT_PER_MINUTE=1000000") // the tests poll hard
	f.env = append(f.env, extraEnv...)
	t.Cleanup(f.cleanup)
	if out, err := f.command("migrate", "up").CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	out, err := f.command("token", "create", "--email", "fleet@example.com", "--name", "fleet").Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	token := strings.TrimSpace(string(out))
	port := freePort(t)
	f.start("api", fmt.Sprintf("PORT=%d", port), "HOST=127.0.0.1")
	f.api = &devNode{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), token: token}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := nethttp.Get(f.api.base + "/api/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("API never became healthy:\n%s", f.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return f
}

func (f *fleet) command(args ...string) *exec.Cmd {
	cmd := exec.Command(binPath, args...)
	cmd.Env = f.env
	return cmd
}

// start runs `saveaction <what>` with extra environment.
func (f *fleet) start(what string, env ...string) *proc {
	f.t.Helper()
	cmd := f.command(what)
	cmd.Env = append(append([]string(nil), f.env...), env...)
	p := &proc{name: what + " " + strings.Join(env, " "), cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	f.mu.Lock()
	f.procs = append(f.procs, p)
	f.mu.Unlock()
	return p
}

func (f *fleet) worker(name string, env ...string) *proc {
	return f.start("worker", append([]string{"WORKER_NAME=" + name}, env...)...)
}

func (p *proc) exited(within time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(within):
		return false
	}
}

func (f *fleet) logs() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, p := range f.procs {
		fmt.Fprintf(&b, "---- %s\n%s\n", p.name, p.logs.String())
	}
	return b.String()
}

func (f *fleet) cleanup() {
	f.mu.Lock()
	procs := append([]*proc(nil), f.procs...)
	f.mu.Unlock()
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		if !p.exited(20 * time.Second) {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	if f.t.Failed() {
		f.t.Logf("fleet logs:\n%s", f.logs())
	}
	f.site.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = persistence.DropDatabase(ctx, f.dsn)
	n := &devNode{prefix: f.prefix, t: f.t, dsn: ""}
	n.dropRedisKeys(ctx)
}

// slowRecording is the demo flow with its actions a second apart, so in
// realistic timing a run lasts about as many seconds as it has actions.
func (f *fleet) slowRecording(steps int) []byte { return f.recordingWithGap(steps, 1000) }

// recordingWithGap is the demo flow's first action repeated steps times,
// gapMs apart.
func (f *fleet) recordingWithGap(steps int, gapMs float64) []byte {
	var rec map[string]any
	raw := bytes.ReplaceAll(examples.DemoRecording(), []byte("http://127.0.0.1:3002"), []byte(f.site.URL))
	if err := json.Unmarshal(raw, &rec); err != nil {
		f.t.Fatal(err)
	}
	first := rec["actions"].([]any)[0].(map[string]any)
	var acts []any
	for i := 0; i < steps; i++ {
		a := map[string]any{}
		for k, v := range first {
			a[k] = v
		}
		a["id"] = fmt.Sprintf("act_%03d", i+1)
		a["timestamp"] = 1764645600000.0 + float64(i)*gapMs
		delete(a, "completedAt")
		acts = append(acts, a)
	}
	rec["actions"] = acts
	rec["id"] = "rec_slow_" + randHex(3)
	out, _ := json.Marshal(rec)
	return out
}

func (f *fleet) createRun(recording []byte, options map[string]any) string {
	f.t.Helper()
	var rec struct {
		ID string `json:"id"`
	}
	f.api.call("POST", "/api/v1/recordings", recording, 201, &rec)
	var run struct {
		ID string `json:"id"`
	}
	f.api.call("POST", "/api/v1/runs", map[string]any{"recordingId": rec.ID, "options": options}, 201, &run)
	return run.ID
}

// waitFor polls the run until cond holds.
func (f *fleet) waitFor(id string, within time.Duration, what string, cond func(runView) bool) runView {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var r runView
		f.api.call("GET", "/api/v1/runs/"+id, nil, 200, &r)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("run %s: %s not reached within %s (last %+v)", id, what, within, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (f *fleet) actions(id string) []actionView {
	var acts []actionView
	f.api.call("GET", "/api/v1/runs/"+id+"/actions", nil, 200, &acts)
	return acts
}

// orphanChromium lists Chromium processes with one of our profiles whose
// parent is init: browsers that outlived their worker.
func orphanChromium() []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid := 0
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		if err != nil || !bytes.Contains(cmdline, []byte("saveaction-chromium-")) || !bytes.Contains(argv0, []byte("chrom")) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 && fields[1] == "1" && fields[0] != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

func TestKilledWorkersRunCompletesElsewhereAsAttemptTwo(t *testing.T) {
	f := newFleet(t, "LEASE_SECONDS=3")
	a := f.worker("worker-a", "WORKER_CONCURRENCY=1")
	id := f.createRun(f.slowRecording(8), map[string]any{"timingMode": "realistic", "timeout": 5000})
	f.waitFor(id, 60*time.Second, "running on worker-a with progress", func(r runView) bool {
		if r.Status != "running" || r.WorkerNode != "worker-a" {
			return false
		}
		done := 0
		for _, act := range f.actions(id) {
			if act.Status == "success" {
				done++
			}
		}
		return done >= 2
	})
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	a.exited(10 * time.Second)
	// Leakless takes the killed worker's Chromium with it.
	deadline := time.Now().Add(10 * time.Second)
	for len(orphanChromium()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if o := orphanChromium(); len(o) > 0 {
		t.Errorf("Chromium outlived its killed worker: pids %v", o)
	}
	f.worker("worker-b", "WORKER_CONCURRENCY=1")
	f.waitFor(id, 60*time.Second, "restarted on worker-b", func(r runView) bool { return r.Attempt == 2 && r.WorkerNode == "worker-b" })
	t.Logf("killed worker's run restarted elsewhere %s after the kill (lease 3 s)", time.Since(killedAt))
	run := f.waitFor(id, 90*time.Second, "finished", func(r runView) bool { return persistence.IsTerminal(persistence.Status(r.Status)) })
	t.Logf("and finished %s %s after the kill", run.Status, time.Since(killedAt))
	if run.Status != "passed" || run.Attempt != 2 || run.WorkerNode != "worker-b" {
		t.Fatalf("recovered run = %+v, want passed as attempt 2 on worker-b", run)
	}
	acts := f.actions(id)
	if len(acts) != 8 {
		t.Fatalf("%d action rows, want 8 (no duplicates)", len(acts))
	}
	for i, act := range acts {
		if act.ActionIndex != i || act.Status != "success" {
			t.Errorf("action %d = %+v", i, act)
		}
	}
}

func TestSIGTERMHandsRunBackAndAnotherWorkerCompletesIt(t *testing.T) {
	f := newFleet(t, "LEASE_SECONDS=30", "SHUTDOWN_GRACE_SECONDS=1")
	a := f.worker("worker-a", "WORKER_CONCURRENCY=1")
	id := f.createRun(f.slowRecording(8), map[string]any{"timingMode": "realistic", "timeout": 5000})
	f.waitFor(id, 60*time.Second, "running on worker-a", func(r runView) bool {
		return r.Status == "running" && r.WorkerNode == "worker-a"
	})
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !a.exited(30 * time.Second) {
		t.Fatal("worker did not exit within 30 s of SIGTERM")
	}
	if code := a.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("worker exited %d after SIGTERM, want 0", code)
	}
	r := f.waitFor(id, 10*time.Second, "queued again", func(r runView) bool { return r.Status != "running" })
	if r.Status != "queued" {
		t.Fatalf("after SIGTERM the run is %s, want queued (handed back, not failed)", r.Status)
	}
	f.worker("worker-b", "WORKER_CONCURRENCY=1")
	run := f.waitFor(id, 90*time.Second, "finished", func(r runView) bool { return persistence.IsTerminal(persistence.Status(r.Status)) })
	if run.Status != "passed" || run.Attempt != 2 || run.WorkerNode != "worker-b" {
		t.Fatalf("handed-back run = %+v, want passed as attempt 2 on worker-b", run)
	}
	if n := len(f.actions(id)); n != 8 {
		t.Fatalf("%d action rows, want 8", n)
	}
}
