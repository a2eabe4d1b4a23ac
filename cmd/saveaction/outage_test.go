package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file holds the outage tests of issue 8, hole 10: the API process
// stays up with Redis or PostgreSQL down, answers what it can, and recovers
// by itself. Each test owns the backend it breaks: a redis-server or a
// PostgreSQL cluster of its own, killed and restarted for real.

// answer is a raw HTTP answer: status and body.
type answer struct {
	status int
	body   []byte
}

// code is the error code of an error envelope ("" otherwise).
func (a answer) code() string {
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(a.body, &env)
	return env.Error.Code
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, a.body) }

// request makes an authenticated JSON request and returns whatever came back.
func (n *devNode) request(method, path string, body any) answer {
	n.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, ok := body.([]byte)
		if !ok {
			raw, _ = json.Marshal(body)
		}
		rd = bytes.NewReader(raw)
	}
	req, _ := nethttp.NewRequest(method, n.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+n.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := &nethttp.Client{Timeout: 20 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 500 && resp.StatusCode != 503 {
		// An outage is a 503 with a code saying which; never a 500.
		n.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return answer{status: resp.StatusCode, body: raw}
}

// eventually polls fn until it reports true, failing the test after within.
func eventually(t *testing.T, within time.Duration, what string, fn func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, last := fn()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not reached within %s; last: %s", what, within, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runTotal is the number of runs the API lists for the token's user.
func (n *devNode) runTotal() int {
	n.t.Helper()
	a := n.request("GET", "/api/v1/runs", nil)
	var list struct {
		Pagination struct {
			Total int `json:"total"`
		} `json:"pagination"`
	}
	if a.status != 200 || json.Unmarshal(a.body, &list) != nil {
		n.t.Fatalf("list runs: %s", a)
	}
	return list.Pagination.Total
}

// privateRedis is a redis-server of the test's own on a loopback port.
type privateRedis struct {
	t    *testing.T
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func newPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed")
	}
	r := &privateRedis{t: t, port: freePort(t)}
	t.Cleanup(r.kill)
	return r
}

func (r *privateRedis) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// start runs redis-server and waits until it answers PING.
func (r *privateRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.t.TempDir())
	r.done = make(chan struct{})
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(r.cmd, r.done)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), MaxRetries: -1})
	defer c.Close()
	eventually(r.t, 10*time.Second, "private redis answering", func() (bool, string) {
		err := c.Ping(context.Background()).Err()
		return err == nil, fmt.Sprint(err)
	})
}

// kill stops redis-server with SIGKILL: an outage, not a shutdown.
func (r *privateRedis) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

func TestAPIStaysUpWhileRedisIsDown(t *testing.T) {
	rs := newPrivateRedis(t)
	// Redis is not running yet: the API must start all the same.
	f := newFleet(t, "REDIS_URL="+rs.url())
	api := f.api

	if a := api.request("GET", "/api/health/live", nil); a.status != 200 {
		t.Fatalf("live with Redis down: %s", a)
	}
	wantRedisDown := func(a answer) {
		t.Helper()
		if a.status != 503 || a.code() != "QUEUE_UNAVAILABLE" || !strings.Contains(string(a.body), `"down":["redis"]`) {
			t.Fatalf("ready with Redis down = %s, want 503 QUEUE_UNAVAILABLE naming redis", a)
		}
	}
	wantRedisDown(api.request("GET", "/api/health/ready", nil))

	// Reads and writes that need only PostgreSQL work.
	var rec struct {
		ID string `json:"id"`
	}
	api.call("POST", "/api/v1/recordings", f.slowRecording(2), 201, &rec)
	api.call("GET", "/api/v1/recordings/"+rec.ID, nil, 200, nil)
	api.call("GET", "/api/v1/recordings", nil, 200, nil)

	// A run cannot be queued: 503, and no run row is left behind.
	newRun := map[string]any{"recordingId": rec.ID}
	start := time.Now()
	if a := api.request("POST", "/api/v1/runs", newRun); a.status != 503 || a.code() != "QUEUE_UNAVAILABLE" {
		t.Fatalf("create run with Redis down = %s, want 503 QUEUE_UNAVAILABLE", a)
	}
	took := time.Since(start)
	t.Logf("503 QUEUE_UNAVAILABLE answered in %s", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("a refused create took %s: a client waits that long on every try", took)
	}
	if n := api.runTotal(); n != 0 {
		t.Fatalf("%d runs left behind by a refused create", n)
	}

	// Redis comes up: readiness and run creation recover with no restart.
	rs.start()
	upAt := time.Now()
	eventually(t, 30*time.Second, "ready after Redis came up", func() (bool, string) {
		a := api.request("GET", "/api/health/ready", nil)
		return a.status == 200, a.String()
	})
	t.Logf("ready %s after Redis came up", time.Since(upAt).Round(time.Millisecond))
	api.call("POST", "/api/v1/runs", newRun, 201, nil)

	// Redis dies under a running API: the same answers, then the same recovery.
	rs.kill()
	if a := api.request("POST", "/api/v1/runs", newRun); a.status != 503 || a.code() != "QUEUE_UNAVAILABLE" {
		t.Fatalf("create run after Redis died = %s, want 503 QUEUE_UNAVAILABLE", a)
	}
	wantRedisDown(api.request("GET", "/api/health/ready", nil))
	if n := api.runTotal(); n != 1 {
		t.Fatalf("%d runs, want the 1 created while Redis was up", n)
	}
	rs.start()
	eventually(t, 30*time.Second, "run creation after Redis came back", func() (bool, string) {
		a := api.request("POST", "/api/v1/runs", newRun)
		return a.status == 201, a.String()
	})
	if logs := f.logs(); strings.Contains(logs, "panic") || strings.Contains(logs, `"status":500`) {
		t.Fatalf("a panic or a 500 while Redis was down:\n%s", logs)
	}
}

// privatePostgres is a PostgreSQL cluster of the test's own, run as the
// postgres user (the server refuses root), on a loopback port.
type privatePostgres struct {
	t    *testing.T
	dir  string
	port int
	bin  string
}

func newPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		t.Skip("initdb is not installed: the PostgreSQL outage test needs a private cluster")
	}
	if os.Geteuid() != 0 {
		t.Skip("a private PostgreSQL cluster needs root to run it as the postgres user")
	}
	pg := &privatePostgres{t: t, port: freePort(t), bin: filepath.Dir(bins[len(bins)-1])}
	dir, err := os.MkdirTemp("", "sa-pg-")
	if err != nil {
		t.Fatal(err)
	}
	pg.dir = dir
	t.Cleanup(func() {
		_ = pg.ctl("stop", "-m", "immediate", "-w")
		_ = os.RemoveAll(dir)
	})
	if out, err := exec.Command("chown", "postgres:", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	if out, err := pg.su(pg.bin+"/initdb", "-D", dir+"/data", "-A", "trust", "-U", "root", "--no-sync", "-E", "UTF8"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	return pg
}

// su runs a command as the postgres user.
func (pg *privatePostgres) su(args ...string) ([]byte, error) {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "su", "postgres", "-s", "/bin/sh", "-c", strings.Join(quoted, " ")).CombinedOutput()
}

func (pg *privatePostgres) ctl(args ...string) error {
	out, err := pg.su(append([]string{pg.bin + "/pg_ctl", "-D", pg.dir + "/data"}, args...)...)
	if err != nil {
		return fmt.Errorf("pg_ctl %v: %w\n%s", args, err, out)
	}
	return nil
}

func (pg *privatePostgres) dsn() string {
	return fmt.Sprintf("postgres://root@127.0.0.1:%d/saveaction?sslmode=disable&connect_timeout=3", pg.port)
}

func (pg *privatePostgres) start() {
	pg.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", pg.port, pg.dir)
	if err := pg.ctl("start", "-w", "-t", "60", "-l", pg.dir+"/log", "-o", opts); err != nil {
		pg.t.Fatal(err)
	}
}

// stop shuts the server down at once, cutting every connection: an outage.
func (pg *privatePostgres) stop() {
	pg.t.Helper()
	if err := pg.ctl("stop", "-m", "immediate", "-w"); err != nil {
		pg.t.Fatal(err)
	}
}

func TestAPIStaysUpWhilePostgresIsDown(t *testing.T) {
	pg := newPrivatePostgres(t)
	pg.start()
	// Migrations, the token and a first API run against the private cluster.
	f := newFleet(t, "DATABASE_URL="+pg.dsn())
	var rec struct {
		ID string `json:"id"`
	}
	f.api.call("POST", "/api/v1/recordings", f.slowRecording(2), 201, &rec)

	wantDBDown := func(api *devNode, when string) {
		t.Helper()
		if a := api.request("GET", "/api/health/live", nil); a.status != 200 {
			t.Fatalf("%s: live = %s", when, a)
		}
		a := api.request("GET", "/api/health/ready", nil)
		if a.status != 503 || a.code() != "DATABASE_UNAVAILABLE" || !strings.Contains(string(a.body), `"postgres"`) {
			t.Fatalf("%s: ready = %s, want 503 DATABASE_UNAVAILABLE naming postgres", when, a)
		}
		for _, rq := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/api/v1/runs", nil},
			{"GET", "/api/v1/recordings/" + rec.ID, nil},
			{"POST", "/api/v1/runs", map[string]any{"recordingId": rec.ID}},
		} {
			if a := api.request(rq.method, rq.path, rq.body); a.status != 503 || a.code() != "DATABASE_UNAVAILABLE" {
				t.Fatalf("%s: %s %s = %s, want 503 DATABASE_UNAVAILABLE", when, rq.method, rq.path, a)
			}
		}
	}
	wantRecovered := func(api *devNode, when string) {
		t.Helper()
		start := time.Now()
		eventually(t, 30*time.Second, when+": ready again", func() (bool, string) {
			a := api.request("GET", "/api/health/ready", nil)
			return a.status == 200, a.String()
		})
		t.Logf("%s: ready %s after PostgreSQL came back", when, time.Since(start).Round(time.Millisecond))
		eventually(t, 15*time.Second, when+": reads again", func() (bool, string) {
			a := api.request("GET", "/api/v1/recordings/"+rec.ID, nil)
			return a.status == 200, a.String()
		})
		api.call("POST", "/api/v1/runs", map[string]any{"recordingId": rec.ID}, 201, nil)
	}

	// PostgreSQL dies under a running API, then comes back.
	pg.stop()
	wantDBDown(f.api, "under a running API")

	// A second API started while PostgreSQL is down starts and says so.
	port := freePort(t)
	second := f.start("api", fmt.Sprintf("PORT=%d", port), "HOST=127.0.0.1")
	api2 := &devNode{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), token: f.api.token}
	eventually(t, 30*time.Second, "second API answering live", func() (bool, string) {
		if !second.alive() {
			t.Fatalf("the API exited with PostgreSQL down:\n%s", second.logs.String())
		}
		resp, err := nethttp.Get(api2.base + "/api/health/live")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	wantDBDown(api2, "API started with PostgreSQL down")

	pg.start()
	wantRecovered(f.api, "first API")
	wantRecovered(api2, "second API")
	if logs := f.logs(); strings.Contains(logs, "panic") || strings.Contains(logs, `"status":500`) {
		t.Fatalf("a panic or a 500 while PostgreSQL was down:\n%s", logs)
	}
	// Both still stop cleanly.
	for _, p := range []*proc{second} {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if !p.exited(20 * time.Second) {
			t.Fatal("API did not stop within 20 s of SIGTERM")
		}
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("API exited %d after SIGTERM, want 0", code)
		}
	}
}

func TestWorkerWithUnreachableBackendsExitsNamingThem(t *testing.T) {
	cases := []struct{ env, want string }{
		{fmt.Sprintf("REDIS_URL=redis://127.0.0.1:%d/0", freePort(t)), "REDIS_URL"},
		{fmt.Sprintf("DATABASE_URL=postgres://root@127.0.0.1:%d/x?sslmode=disable&connect_timeout=2", freePort(t)), "DATABASE_URL"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binPath, "worker")
			// The database that always exists, so only the backend under test is missing.
			cmd.Env = append(os.Environ(), "METRICS_PORT=0", "REDIS_PREFIX=unreachable:"+randHex(4)+":",
				"DATABASE_URL=postgres://root@127.0.0.1:5432/postgres?sslmode=disable", c.env)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("worker with %s: err %v, want exit status 1\n%s", c.env, err, out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Fatalf("the message does not name %s:\n%s", c.want, out)
			}
		})
	}
}
