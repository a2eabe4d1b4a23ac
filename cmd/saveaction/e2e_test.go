package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/saveaction/runner/examples"
	"github.com/saveaction/runner/persistence"
)

// binPath is the saveaction binary built once for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "saveaction-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "saveaction")
	var out []byte
	if bin := os.Getenv("SAVEACTION_TEST_BIN"); bin != "" {
		// Run the process-level tests against another build (say, an
		// older commit's, to see a test fail before its fix).
		binPath = bin
	} else {
		out, err = exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "build saveaction: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// devNode is a `saveaction dev` process with its own database and Redis prefix.
type devNode struct {
	t        *testing.T
	cmd      *exec.Cmd
	base     string
	demoPort int
	token    string
	dsn      string
	prefix   string
	logs     *syncBuffer // written by the process's output copier
}

func startDev(t *testing.T, extraEnv ...string) *devNode {
	t.Helper()
	if testing.Short() {
		t.Skip("process-level test: skipped with -short")
	}
	id := randHex(4)
	n := &devNode{t: t,
		dsn:    "postgres://root@127.0.0.1:5432/sa_e2e_" + id + "?sslmode=disable",
		prefix: "e2e:" + id + ":",
		logs:   &syncBuffer{},
	}
	port, demo := freePort(t), freePort(t)
	n.demoPort = demo
	storage := t.TempDir()
	cmd := exec.Command(binPath, "dev")
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+n.dsn, "REDIS_PREFIX="+n.prefix,
		fmt.Sprintf("PORT=%d", port), fmt.Sprintf("DEMO_PORT=%d", demo),
		"WORKER_NAME=e2e-"+id, "LOG_FORMAT=json", "LOG_LEVEL=info", "RATE_LIMIT_PER_MINUTE=1000000",
		"VIDEO_STORAGE_PATH="+filepath.Join(storage, "videos"),
		"SCREENSHOT_STORAGE_PATH="+filepath.Join(storage, "screenshots"),
		"FILES_PATH="+filepath.Join(storage, "files"), "ARTIFACT_STORE="+filepath.Join(storage, "artifacts"))
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stderr = n.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.cmd = cmd
	t.Cleanup(n.stop)
	tokenCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if tok, ok := strings.CutPrefix(line, "Token: "); ok {
				tokenCh <- tok
			}
		}
	}()
	select {
	case n.token = <-tokenCh:
	case <-time.After(60 * time.Second):
		t.Fatalf("saveaction dev printed no token in 60 s; logs:\n%s", n.logs.String())
	}
	n.base = fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := nethttp.Get(n.base + "/api/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("API never became healthy; logs:\n%s", n.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

func (n *devNode) stop() {
	if n.cmd.ProcessState == nil {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = n.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	if n.t.Failed() {
		n.t.Logf("saveaction dev logs:\n%s", n.logs.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = persistence.DropDatabase(ctx, n.dsn)
	n.dropRedisKeys(ctx)
}

func (n *devNode) dropRedisKeys(ctx context.Context) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	iter := rdb.Scan(ctx, 0, n.prefix+"*", 100).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}

// call makes an authenticated JSON request and decodes the envelope's data.
func (n *devNode) call(method, path string, body any, wantStatus int, out any) {
	n.t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case []byte:
			rd = bytes.NewReader(b)
		default:
			raw, _ := json.Marshal(b)
			rd = bytes.NewReader(raw)
		}
	}
	req, _ := nethttp.NewRequest(method, n.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+n.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		n.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, wantStatus, raw)
	}
	if out != nil {
		var env struct {
			Success bool            `json:"success"`
			Data    json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(raw, &env); err != nil || !env.Success {
			n.t.Fatalf("%s %s: bad envelope: %s", method, path, raw)
		}
		if err := json.Unmarshal(env.Data, out); err != nil {
			n.t.Fatalf("%s %s: decode data: %v: %s", method, path, err, env.Data)
		}
	}
}

// recordingFor rewrites an example recording to the test's demo port.
func (n *devNode) recordingFor(raw []byte) []byte {
	return bytes.ReplaceAll(raw, []byte("127.0.0.1:3002"), []byte(fmt.Sprintf("127.0.0.1:%d", n.demoPort)))
}

type runView struct {
	ID              string  `json:"id"`
	Status          string  `json:"status"`
	ActionsTotal    int     `json:"actionsTotal"`
	ActionsExecuted int     `json:"actionsExecuted"`
	ActionsFailed   int     `json:"actionsFailed"`
	ActionsSkipped  int     `json:"actionsSkipped"`
	ErrorMessage    *string `json:"errorMessage"`
	ErrorActionID   *string `json:"errorActionId"`
	Attempt         int     `json:"attempt"`
	WorkerNode      string  `json:"workerNode"`
	DurationMs      *int64  `json:"durationMs"`
}

type actionView struct {
	ActionID     string  `json:"actionId"`
	ActionType   string  `json:"actionType"`
	ActionIndex  int     `json:"actionIndex"`
	Status       string  `json:"status"`
	SelectorUsed *string `json:"selectorUsed"`
	ErrorMessage *string `json:"errorMessage"`
	DurationMs   *int64  `json:"durationMs"`
}

func (n *devNode) waitRun(id string, within time.Duration) runView {
	n.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var r runView
		n.call("GET", "/api/v1/runs/"+id, nil, 200, &r)
		if persistence.IsTerminal(persistence.Status(r.Status)) {
			return r
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("run %s still %s after %s", id, r.Status, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestEndToEndPassingAndFailingRuns(t *testing.T) {
	n := startDev(t)

	var rec struct {
		ID          string `json:"id"`
		ActionCount int    `json:"actionCount"`
	}
	n.call("POST", "/api/v1/recordings", n.recordingFor(examples.DemoRecording()), 201, &rec)
	if rec.ActionCount != 6 {
		t.Fatalf("actionCount = %d, want 6", rec.ActionCount)
	}
	opts := map[string]any{"timingMode": "instant", "timeout": 5000}
	var created struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	start := time.Now()
	n.call("POST", "/api/v1/runs", map[string]any{"recordingId": rec.ID, "options": opts}, 201, &created)
	if created.Status != "queued" {
		t.Fatalf("new run status %q, want queued", created.Status)
	}
	run := n.waitRun(created.ID, 60*time.Second)
	t.Logf("passing run: POST to %s in %s", run.Status, time.Since(start))
	if run.Status != "passed" || run.ActionsTotal != 6 || run.ActionsExecuted != 6 || run.ActionsFailed != 0 || run.ActionsSkipped != 0 {
		t.Fatalf("passing run = %+v", run)
	}
	if run.Attempt != 1 || !strings.HasPrefix(run.WorkerNode, "e2e-") {
		t.Fatalf("attempt %d on worker %q, want attempt 1 on the e2e worker", run.Attempt, run.WorkerNode)
	}
	var acts []actionView
	n.call("GET", "/api/v1/runs/"+created.ID+"/actions", nil, 200, &acts)
	if len(acts) != 6 {
		t.Fatalf("%d action rows, want 6", len(acts))
	}
	for i, a := range acts {
		if a.ActionIndex != i || a.Status != "success" {
			t.Errorf("action %d = %+v, want index %d success", i, a, i)
		}
	}
	if acts[2].SelectorUsed == nil || *acts[2].SelectorUsed == "" {
		t.Errorf("click on the greet button reports no selector used: %+v", acts[2])
	}

	// The failing recording: its third action looks for a button that is gone.
	n.call("POST", "/api/v1/recordings", n.recordingFor(examples.FailingRecording()), 201, &rec)
	n.call("POST", "/api/v1/runs", map[string]any{"recordingId": rec.ID, "options": map[string]any{"timingMode": "instant", "timeout": 1000}}, 201, &created)
	run = n.waitRun(created.ID, 60*time.Second)
	if run.Status != "failed" || run.ActionsExecuted != 3 || run.ActionsFailed != 1 || run.ActionsSkipped != 1 {
		t.Fatalf("failing run = %+v", run)
	}
	if run.ErrorActionID == nil || *run.ErrorActionID != "act_003" || run.ErrorMessage == nil || *run.ErrorMessage == "" {
		t.Fatalf("failing run error = %v / %v, want a message on act_003", run.ErrorMessage, run.ErrorActionID)
	}
	n.call("GET", "/api/v1/runs/"+created.ID+"/actions", nil, 200, &acts)
	want := []string{"success", "success", "failed", "skipped"}
	if len(acts) != len(want) {
		t.Fatalf("%d action rows, want %d", len(acts), len(want))
	}
	for i, a := range acts {
		if a.Status != want[i] {
			t.Errorf("action %d status %s, want %s", i, a.Status, want[i])
		}
	}
}
