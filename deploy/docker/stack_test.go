//go:build deploystack

// Package docker checks a running compose stack (make deploy-test starts it
// and runs these tests against it; see deploy-test.sh). Every check goes
// through what a user has: the published API ports, docker, docker compose,
// Prometheus's API.
package docker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/saveaction/runner/examples"
)

// stack is the compose stack under test, from deploy-test.sh's environment.
type stack struct {
	t          *testing.T
	apis       []string // base URLs of the API nodes, as published
	prometheus string
	compose    []string // the compose command with its files
	docker     string
	token      string
}

// on is the stack with its failures reported on t (a subtest).
func (s *stack) on(t *testing.T) *stack {
	c := *s
	c.t = t
	return &c
}

func newStack(t *testing.T) *stack {
	apis := os.Getenv("SAVEACTION_DEPLOY_API")
	if apis == "" {
		t.Skip("no stack: run make deploy-test")
	}
	s := &stack{
		t:          t,
		apis:       strings.Split(apis, ","),
		prometheus: os.Getenv("SAVEACTION_DEPLOY_PROMETHEUS"),
		compose:    strings.Fields(os.Getenv("SAVEACTION_DEPLOY_COMPOSE")),
		docker:     os.Getenv("SAVEACTION_DEPLOY_DOCKER"),
	}
	return s
}

// run runs a command and returns its standard output.
func (s *stack) run(name string, args ...string) string {
	s.t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func (s *stack) composeRun(args ...string) string {
	s.t.Helper()
	return s.run(s.compose[0], append(s.compose[1:], args...)...)
}

// psql runs one query in the postgres container and returns its rows.
func (s *stack) psql(query string) string {
	s.t.Helper()
	return strings.TrimSpace(s.composeRun("exec", "-T", "postgres", "psql", "-U", "saveaction", "-d", "saveaction", "-Atc", query))
}

// call sends a request to the API node i and decodes the envelope's data.
func (s *stack) call(i int, method, path string, body any, want int, out any) {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, err := nethttp.NewRequest(method, s.apis[i%len(s.apis)]+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &nethttp.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	if out == nil {
		return
	}
	var env struct {
		Success bool            `json:"success"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || !env.Success {
		s.t.Fatalf("%s %s: bad envelope: %s", method, path, raw)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		s.t.Fatalf("%s %s: %v: %s", method, path, err, env.Data)
	}
}

type runView struct {
	ID              string `json:"id"`
	Status          string `json:"status"`
	ActionsTotal    int    `json:"actionsTotal"`
	ActionsExecuted int    `json:"actionsExecuted"`
	Attempt         int    `json:"attempt"`
	WorkerNode      string `json:"workerNode"`
	ErrorMessage    string `json:"errorMessage"`
}

func terminal(status string) bool {
	return status == "passed" || status == "failed" || status == "cancelled"
}

// recording is the demo flow aimed at the site service; with steps > 0 it
// is the flow's first action repeated steps times a second apart, so that in
// realistic timing a run lasts about steps seconds.
func (s *stack) recording(steps int) []byte {
	s.t.Helper()
	raw := bytes.ReplaceAll(examples.DemoRecording(), []byte("http://127.0.0.1:3002"), []byte("http://site:8080"))
	var rec map[string]any
	if err := json.Unmarshal(raw, &rec); err != nil {
		s.t.Fatal(err)
	}
	rec["id"] = fmt.Sprintf("rec_deploy_%d", time.Now().UnixNano())
	if steps > 0 {
		first := rec["actions"].([]any)[0].(map[string]any)
		var acts []any
		for i := range steps {
			a := map[string]any{}
			for k, v := range first {
				a[k] = v
			}
			a["id"] = fmt.Sprintf("act_%03d", i+1)
			a["timestamp"] = 1764645600000.0 + float64(i)*1000
			delete(a, "completedAt")
			acts = append(acts, a)
		}
		rec["actions"] = acts
	}
	out, err := json.Marshal(rec)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// createRun uploads the recording through API node i and runs it.
func (s *stack) createRun(i int, rec []byte, options map[string]any) string {
	s.t.Helper()
	var r struct {
		ID string `json:"id"`
	}
	s.call(i, "POST", "/api/v1/recordings", rec, 201, &r)
	var run struct {
		ID string `json:"id"`
	}
	s.call(i, "POST", "/api/v1/runs", map[string]any{"recordingId": r.ID, "options": options}, 201, &run)
	return run.ID
}

// waitRun polls the run (through every API node in turn) until cond holds.
func (s *stack) waitRun(id string, within time.Duration, what string, cond func(runView) bool) runView {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for i := 0; ; i++ {
		var r runView
		s.call(i, "GET", "/api/v1/runs/"+id, nil, 200, &r)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("run %s: %s not reached within %s (last %+v)", id, what, within, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkRows: the run passed with one row per action, each written once,
// none left pending (read from PostgreSQL, not the API).
func (s *stack) checkRows(r runView) {
	s.t.Helper()
	if r.Status != "passed" {
		s.t.Fatalf("run %s: %s (%s), want passed", r.ID, r.Status, r.ErrorMessage)
	}
	got := s.psql(fmt.Sprintf(`SELECT count(*), count(DISTINCT action_index), count(*) FILTER (WHERE status = 'pending')
		FROM run_actions WHERE run_id = '%s'`, r.ID))
	want := fmt.Sprintf("%d|%d|0", r.ActionsTotal, r.ActionsTotal)
	if got != want {
		s.t.Fatalf("run %s: rows (total|distinct|pending) = %s, want %s", r.ID, got, want)
	}
	if n := s.psql(fmt.Sprintf(`SELECT count(*) FROM runs WHERE id = '%s'`, r.ID)); n != "1" {
		s.t.Fatalf("run %s: %s rows in runs", r.ID, n)
	}
}

// actionsDone is how many of the run's action rows the current attempt has
// written (the run's own counters are only set when it finishes).
func (s *stack) actionsDone(id string) int {
	s.t.Helper()
	n, err := strconv.Atoi(s.psql(fmt.Sprintf(`SELECT count(*) FROM run_actions WHERE run_id = '%s' AND status <> 'pending'`, id)))
	if err != nil {
		s.t.Fatalf("run %s: action rows: %v", id, err)
	}
	return n
}

// workerContainer is the compose service whose worker owns the run: a
// worker's default name starts with its host name, which compose.yaml sets
// to the service's name.
func workerService(node string) string {
	m := regexp.MustCompile(`^(worker-[0-9]+)-`).FindStringSubmatch(node)
	if m == nil {
		return ""
	}
	return m[1]
}

// waitHealthy waits until the service's container is running and healthy.
func (s *stack) waitHealthy(service string, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		id := strings.TrimSpace(s.composeRun("ps", "-q", service))
		if id != "" {
			st := strings.TrimSpace(s.run(s.docker, "inspect", "-f", "{{.State.Status}} {{.State.Health.Status}}", id))
			if st == "running healthy" {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s not healthy within %s", service, within)
		}
		time.Sleep(time.Second)
	}
}

func TestStack(t *testing.T) {
	s := newStack(t)
	start := time.Now()
	lap := func(what string) {
		t.Logf("timing: %-34s %6.1fs", what, time.Since(start).Seconds())
		start = time.Now()
	}

	out := s.composeRun("exec", "-T", "api", "saveaction", "token", "create", "--email", "deploy@example.com", "--name", "deploy-test",
		"--scopes", "recordings:read,recordings:write,runs:read,runs:execute,workers:read")
	lines := strings.Fields(out)
	if len(lines) == 0 {
		t.Fatalf("token create printed nothing")
	}
	s.token = lines[len(lines)-1]
	lap("token (compose exec api)")

	t.Run("both API nodes ready", func(t *testing.T) {
		s := s.on(t)
		for i, base := range s.apis {
			resp, err := nethttp.Get(base + "/api/health/ready")
			if err != nil {
				t.Fatalf("API node %d: %v", i, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("API node %d (%s): ready = %d", i, base, resp.StatusCode)
			}
		}
	})

	t.Run("every Prometheus target up", func(t *testing.T) {
		s := s.on(t)
		// DNS discovery refreshes every 30 s and targets are scraped every
		// 15 s: a target may take a minute to be seen and scraped.
		deadline := time.Now().Add(150 * time.Second)
		var last string
		for {
			resp, err := nethttp.Get(s.prometheus + "/api/v1/targets?state=active")
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Data struct {
					ActiveTargets []struct {
						Labels map[string]string `json:"labels"`
						Health string            `json:"health"`
					} `json:"activeTargets"`
				} `json:"data"`
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			jobs := map[string]int{}
			down := 0
			for _, tg := range body.Data.ActiveTargets {
				jobs[tg.Labels["job"]]++
				if tg.Health != "up" {
					down++
				}
			}
			last = fmt.Sprintf("targets per job %v, %d not up", jobs, down)
			if down == 0 && jobs["saveaction-api"] == 2 && jobs["saveaction-worker"] == 3 {
				t.Log(last)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Prometheus: %s; want 2 API and 3 worker targets, all up", last)
			}
			time.Sleep(2 * time.Second)
		}
	})
	lap("Prometheus targets up")

	t.Run("worker names distinct", func(t *testing.T) {
		s := s.on(t)
		var fleet struct {
			Workers []struct {
				Name  string `json:"name"`
				Slots int    `json:"slots"`
			} `json:"workers"`
			Clustered bool `json:"clustered"`
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			s.call(0, "GET", "/api/v1/workers", nil, 200, &fleet)
			if len(fleet.Workers) == 3 || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		if !fleet.Clustered || len(fleet.Workers) != 3 {
			t.Fatalf("fleet: clustered=%v, %d workers, want 3: %+v", fleet.Clustered, len(fleet.Workers), fleet.Workers)
		}
		seen := map[string]bool{}
		services := map[string]bool{}
		for _, w := range fleet.Workers {
			if seen[w.Name] {
				t.Fatalf("worker name %q twice", w.Name)
			}
			seen[w.Name] = true
			services[workerService(w.Name)] = true
		}
		if len(services) != 3 || services[""] {
			t.Fatalf("worker names %v: want one per worker service", seen)
		}
		t.Logf("workers: %v", seen)
	})

	t.Run("runs pass", func(t *testing.T) {
		s := s.on(t)
		var ids []string
		for i := range 4 {
			ids = append(ids, s.createRun(i, s.recording(0), map[string]any{"timeout": 30000}))
		}
		for _, id := range ids {
			r := s.waitRun(id, 5*time.Minute, "finished", func(r runView) bool { return terminal(r.Status) })
			s.checkRows(r)
		}
	})
	lap("4 runs passed")

	t.Run("Chromium runs as the non-root user, sandboxed, under tini", func(t *testing.T) {
		s := s.on(t)
		found := 0
		for _, svc := range []string{"worker-1", "worker-2", "worker-3"} {
			id := strings.TrimSpace(s.composeRun("ps", "-q", svc))
			// docker top runs ps on the host over the container's processes.
			out := s.run(s.docker, "top", id, "-eo", "uid,pid,ppid,args")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) < 3 {
				t.Fatalf("%s: processes:\n%s", svc, out)
			}
			// The container's first process, by the host pid Docker gives
			// (docker top sorts by host pid, which wraps, and health checks
			// are exec'd beside it), must be tini.
			initPID := strings.TrimSpace(s.run(s.docker, "inspect", "-f", "{{.State.Pid}}", id))
			isTini := false
			for _, l := range lines[1:] {
				if f := strings.Fields(l); len(f) >= 4 && f[1] == initPID {
					isTini = strings.Contains(f[3], "tini")
				}
			}
			if !isTini {
				t.Fatalf("%s: the first process (host pid %s) is not tini:\n%s", svc, initPID, out)
			}
			for _, l := range lines[1:] {
				f := strings.Fields(l)
				if len(f) < 4 {
					continue
				}
				if f[0] == "0" {
					t.Fatalf("%s: a process runs as root: %s", svc, l)
				}
				if !strings.Contains(l, "chromium") {
					continue
				}
				found++
				if f[0] != "10001" {
					t.Fatalf("%s: Chromium runs as uid %s, want 10001 (saveaction): %s", svc, f[0], l)
				}
				if strings.Contains(l, "--no-sandbox") {
					t.Fatalf("%s: Chromium runs without its sandbox: %s", svc, l)
				}
			}
		}
		if found == 0 {
			t.Fatal("no Chromium process in any worker after the runs")
		}
		t.Logf("%d Chromium processes, all uid 10001, none with --no-sandbox", found)
	})

	t.Run("docker kill of the owner: the run passes elsewhere", func(t *testing.T) {
		s := s.on(t)
		id := s.createRun(1, s.recording(10), map[string]any{"timingMode": "realistic", "timeout": 30000})
		r := s.waitRun(id, 4*time.Minute, "running with progress", func(r runView) bool {
			return r.Status == "running" && workerService(r.WorkerNode) != "" && s.actionsDone(r.ID) >= 2
		})
		victim := workerService(r.WorkerNode)
		cid := strings.TrimSpace(s.composeRun("ps", "-q", victim))
		killed := time.Now()
		s.run(s.docker, "kill", cid)
		after := s.waitRun(id, 5*time.Minute, "finished", func(r runView) bool { return terminal(r.Status) })
		t.Logf("killed %s (%s) mid-run; run %s on %s, attempt %d, %.1fs after the kill",
			victim, r.WorkerNode, after.Status, after.WorkerNode, after.Attempt, time.Since(killed).Seconds())
		s.checkRows(after)
		if workerService(after.WorkerNode) == victim || after.Attempt < 2 {
			t.Fatalf("run finished on %s attempt %d; want another worker, attempt >= 2", after.WorkerNode, after.Attempt)
		}
		// The restart policy brings the killed worker back (or start it).
		s.composeRun("start", victim)
		s.waitHealthy(victim, 2*time.Minute)
	})
	lap("kill: run passed elsewhere")

	t.Run("docker compose stop of the owner: handed back, finished by another", func(t *testing.T) {
		s := s.on(t)
		// compose.test.yaml gives workers a 5 s shutdown grace: a 25 s run
		// outlives it and is handed back.
		id := s.createRun(2, s.recording(25), map[string]any{"timingMode": "realistic", "timeout": 30000})
		r := s.waitRun(id, 4*time.Minute, "running with progress", func(r runView) bool {
			return r.Status == "running" && workerService(r.WorkerNode) != "" && s.actionsDone(r.ID) >= 2
		})
		victim := workerService(r.WorkerNode)
		cid := strings.TrimSpace(s.composeRun("ps", "-q", victim))
		stopped := time.Now()
		s.composeRun("stop", victim)
		took := time.Since(stopped)
		code := strings.TrimSpace(s.run(s.docker, "inspect", "-f", "{{.State.ExitCode}}", cid))
		if code != "0" {
			t.Fatalf("%s exited %s after compose stop (%.1fs): SIGTERM did not reach a graceful exit", victim, code, took.Seconds())
		}
		after := s.waitRun(id, 5*time.Minute, "finished", func(r runView) bool { return terminal(r.Status) })
		t.Logf("stopped %s mid-run in %.1fs (exit 0); run %s on %s, attempt %d",
			victim, took.Seconds(), after.Status, after.WorkerNode, after.Attempt)
		s.checkRows(after)
		if workerService(after.WorkerNode) == victim {
			t.Fatalf("run finished on the stopped worker %s", after.WorkerNode)
		}
		logs := s.composeRun("logs", "--no-color", victim)
		if !strings.Contains(logs, "hand") {
			t.Logf("note: no hand-back line in %s's log", victim)
		}
		s.composeRun("start", victim)
		s.waitHealthy(victim, 2*time.Minute)
	})
	lap("stop: handed back, passed elsewhere")

	t.Run("no duplicate rows", func(t *testing.T) {
		s := s.on(t)
		if n := s.psql(`SELECT count(*) FROM (SELECT run_id, action_index FROM run_actions GROUP BY 1, 2 HAVING count(*) > 1) d`); n != "0" {
			t.Fatalf("%s (run, action) pairs with more than one row", n)
		}
		got := s.psql(`SELECT status, count(*) FROM runs GROUP BY 1 ORDER BY 1`)
		if got != "passed|"+strconv.Itoa(6) {
			t.Fatalf("runs by status: %q, want the 6 created, all passed", got)
		}
	})
}
