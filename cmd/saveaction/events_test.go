package main

// Process-level tests of live run events (issue 11): separate api and
// worker processes, the SSE endpoint, resume across an API restart, and
// `saveaction submit --wait`.

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	nethttp "net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/saveaction/runner/examples"
	"github.com/saveaction/runner/queue"
)

// received is an event as a client got it.
type received struct {
	sseEvent
	at time.Time
}

func (f *fleet) client() *apiClient {
	return &apiClient{base: f.api.base, token: f.api.token, hc: &nethttp.Client{}}
}

// watch reads run id's events after last until run.finished, the stream's
// end, stop returning true, or within.
func (f *fleet) watch(id, last string, within time.Duration, stop func([]received) bool) ([]received, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var got []received
	err := stream(ctx, f.client(), id, last, func(ev sseEvent) bool {
		got = append(got, received{ev, time.Now()})
		return ev.Name != queue.EventRunFinished && (stop == nil || !stop(got))
	})
	return got, err
}

// checkRun asserts a whole run's events: queued, started, each action
// started then finished with success, finished passed; ids increasing.
func checkRun(t *testing.T, who string, evs []received, actions int) {
	t.Helper()
	var names []string
	for i, ev := range evs {
		names = append(names, ev.Name)
		if i > 0 && !queue.EventIDLess(evs[i-1].ID, ev.ID) {
			t.Errorf("%s: ids not increasing: %s then %s", who, evs[i-1].ID, ev.ID)
		}
		if ev.Name == queue.EventActionFinished {
			var d queue.ActionFinishedData
			if err := json.Unmarshal(ev.Data, &d); err != nil || d.Status != "success" {
				t.Errorf("%s: action.finished %s, want success", who, ev.Data)
			}
		}
	}
	want := []string{queue.EventRunQueued, queue.EventRunStarted}
	for range actions {
		want = append(want, queue.EventActionStarted, queue.EventActionFinished)
	}
	want = append(want, queue.EventRunFinished)
	if !slices.Equal(names, want) {
		t.Fatalf("%s: events %v,\nwant %v", who, names, want)
	}
	var fin queue.RunFinishedData
	if err := json.Unmarshal(evs[len(evs)-1].Data, &fin); err != nil || fin.Status != "passed" || fin.ActionsExecuted != actions {
		t.Fatalf("%s: run.finished %s, want passed with %d actions", who, evs[len(evs)-1].Data, actions)
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// A run watched over SSE by many clients, the API and the worker being
// different processes: every client gets every event once, in order; a
// client that joins after the end gets the replay and the stream ends.
func TestRunEventsOverSSEFromASeparateWorker(t *testing.T) {
	f := newFleet(t)
	f.worker("worker-a", "WORKER_CONCURRENCY=1")
	const actions, watchers = 6, 25
	id := f.createRun(f.slowRecording(actions), map[string]any{"timingMode": "realistic", "timeout": 5000})
	results := make([][]received, watchers)
	errs := make([]error, watchers)
	var wg sync.WaitGroup
	for i := range watchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = f.watch(id, "", 90*time.Second, nil)
		}()
	}
	wg.Wait()
	var lat []time.Duration
	for i := range watchers {
		if errs[i] != nil {
			t.Fatalf("watcher %d: %v", i, errs[i])
		}
		checkRun(t, fmt.Sprintf("watcher %d", i), results[i], actions)
		for _, ev := range results[i] {
			if ev.Name != queue.EventActionFinished {
				continue
			}
			var d queue.ActionFinishedData
			_ = json.Unmarshal(ev.Data, &d)
			done, err := time.Parse(time.RFC3339Nano, d.CompletedAt)
			if err != nil {
				t.Fatalf("action.finished without completedAt: %s", ev.Data)
			}
			lat = append(lat, ev.at.Sub(done))
		}
	}
	t.Logf("action finished on the worker -> event at an SSE client (%d events, %d clients): p50 %s, p95 %s, max %s",
		len(lat), watchers, percentile(lat, 0.5), percentile(lat, 0.95), percentile(lat, 1))
	if p95 := percentile(lat, 0.95); p95 > 2*time.Second {
		t.Errorf("p95 latency %s; want well under 2 s on loopback", p95)
	}

	// After the end: the replay, then the stream ends by itself.
	start := time.Now()
	late, err := f.watch(id, "", 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, "late subscriber", late, actions)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a finished run's stream took %s to end", took)
	}
	// Resuming at the last event gives nothing more and ends... at once.
	rest, err := f.watch(id, late[len(late)-3].ID, 10*time.Second, nil)
	if err != nil || len(rest) != 2 || rest[0].Name != queue.EventActionFinished || rest[1].Name != queue.EventRunFinished {
		t.Fatalf("resume after %s = %+v, %v; want the last two events", late[len(late)-3].ID, rest, err)
	}
	// Once the events are gone (expired), one run.finished from the row.
	if err := f.redis().Del(context.Background(), f.prefix+"events:"+id).Err(); err != nil {
		t.Fatal(err)
	}
	gone, err := f.watch(id, "", 10*time.Second, nil)
	if err != nil || len(gone) != 1 || gone[0].Name != queue.EventRunFinished || !bytes.Contains(gone[0].Data, []byte(`"status":"passed"`)) {
		t.Fatalf("expired events = %+v, %v; want one run.finished passed", gone, err)
	}
}

// Another user's run is 404, and a bad Last-Event-ID is 400.
func TestRunEventsRefusals(t *testing.T) {
	f := newFleet(t)
	id := f.createRun(f.slowRecording(1), nil)
	out, err := f.command("token", "create", "--email", "other@example.com", "--name", "other").Output()
	if err != nil {
		t.Fatal(err)
	}
	other := &apiClient{base: f.api.base, token: strings.TrimSpace(string(out)), hc: &nethttp.Client{}}
	err = stream(context.Background(), other, id, "", func(sseEvent) bool { return false })
	if ae, ok := err.(*apiErr); !ok || ae.Status != 404 || ae.Code != "RUN_NOT_FOUND" {
		t.Fatalf("another user's stream: %v, want 404 RUN_NOT_FOUND", err)
	}
	err = stream(context.Background(), f.client(), id, "not-an-id", func(sseEvent) bool { return false })
	if ae, ok := err.(*apiErr); !ok || ae.Status != 400 {
		t.Fatalf("bad Last-Event-ID: %v, want 400", err)
	}
}

// The API node restarts mid-run: the open stream ends cleanly and at once
// on SIGTERM, and the client resumes on the new node with Last-Event-ID,
// missing nothing and getting nothing twice.
func TestRunEventsResumeAcrossAnAPIRestart(t *testing.T) {
	f := newFleet(t)
	f.worker("worker-a", "WORKER_CONCURRENCY=1")
	const actions = 8
	id := f.createRun(f.slowRecording(actions), map[string]any{"timingMode": "realistic", "timeout": 5000})
	first, err := f.watch(id, "", 60*time.Second, func(got []received) bool {
		n := 0
		for _, ev := range got {
			if ev.Name == queue.EventActionFinished {
				n++
			}
		}
		return n >= 3
	})
	if err != nil {
		t.Fatal(err)
	}
	// A second client stays connected through the shutdown.
	type result struct {
		evs []received
		err error
	}
	open := make(chan result, 1)
	live := make(chan struct{})
	go func() {
		var once sync.Once
		evs, err := f.watch(id, first[len(first)-1].ID, 60*time.Second, func([]received) bool {
			once.Do(func() { close(live) })
			return false
		})
		open <- result{evs, err}
	}()
	select {
	case <-live:
	case <-time.After(30 * time.Second):
		t.Fatal("the second stream got no event in 30 s")
	}
	api := f.procs[0]
	if err := api.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	select {
	case r := <-open:
		t.Logf("open stream ended %s after SIGTERM (%d events, err %v)", time.Since(stopped), len(r.evs), r.err)
		for _, ev := range r.evs {
			if ev.Name == queue.EventRunFinished {
				t.Fatal("the run finished before the restart; make it longer")
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an open event stream kept the API from stopping for 5 s")
	}
	if !api.exited(15 * time.Second) {
		t.Fatal("API did not exit after SIGTERM")
	}
	if code := api.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("API exited %d, want 0", code)
	}
	port := strings.TrimPrefix(f.api.base, "http://127.0.0.1:")
	f.start("api", "PORT="+port, "HOST=127.0.0.1")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := nethttp.Get(f.api.base + "/api/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the new API never became healthy")
		}
	}
	rest, err := f.watch(id, first[len(first)-1].ID, 90*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, "resumed", append(first, rest...), actions)
}

// submit runs `saveaction submit` and returns its exit code and output.
func (f *fleet) submit(args ...string) (int, string, string) {
	f.t.Helper()
	cmd := f.command(append([]string{"submit", "--server", f.api.base}, args...)...)
	cmd.Env = append(cmd.Env, "SAVEACTION_TOKEN="+f.api.token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		f.t.Fatalf("submit did not end in 3 minutes:\n%s\n%s", stdout.String(), stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

func (f *fleet) siteRecording(t *testing.T, raw []byte, name string) string {
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, bytes.ReplaceAll(raw, []byte("http://127.0.0.1:3002"), []byte(f.site.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// submit --wait: a passing and a failing recording give exit 1 and a JUnit
// file with one case each, the failure on the failing one; a second submit
// reuses the stored recording; a bad token is exit 2.
func TestSubmitWaitsAndReports(t *testing.T) {
	f := newFleet(t)
	f.worker("worker-a", "WORKER_CONCURRENCY=2")
	pass := f.siteRecording(t, examples.DemoRecording(), "demo.json")
	failing := f.siteRecording(t, examples.FailingRecording(), "failing.json")
	junit := filepath.Join(t.TempDir(), "report.xml")
	code, stdout, stderr := f.submit("--wait", "--timing-mode", "instant", "--junit", junit, pass, failing)
	if code != 1 {
		t.Fatalf("submit of a passing and a failing recording exited %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "1 of 2 passed") || !strings.Contains(stdout, "FAIL") || !strings.Contains(stdout, "ok  ") {
		t.Errorf("output lacks progress lines or summary:\n%s", stdout)
	}
	t.Logf("submit output (not a terminal):\n%s", stdout)
	raw, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Cases []struct {
				Name      string `xml:"name,attr"`
				Classname string `xml:"classname,attr"`
				Failure   *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Tests != 2 || doc.Failures != 1 || len(doc.Suites) != 1 || len(doc.Suites[0].Cases) != 2 {
		t.Fatalf("JUnit report: %s", raw)
	}
	for _, c := range doc.Suites[0].Cases {
		wantFail := c.Classname == "failing.json"
		if (c.Failure != nil) != wantFail {
			t.Errorf("case %s (%s): failure %+v", c.Name, c.Classname, c.Failure)
		}
	}

	// Again, the passing one alone: its recording is reused (409 -> PUT).
	code, stdout, stderr = f.submit("--wait", "--json", "--timing-mode", "instant", pass)
	if code != 0 {
		t.Fatalf("second submit exited %d\n%s\n%s", code, stdout, stderr)
	}
	var res []struct {
		Run runResult `json:"run"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || len(res) != 1 || res[0].Run.Status != "passed" {
		t.Fatalf("--json output %q: %v", stdout, err)
	}
	var recs []struct{ ID string }
	f.api.call("GET", "/api/v1/recordings", nil, 200, &recs)
	if len(recs) != 2 {
		t.Fatalf("%d recordings stored, want 2 (the second submit reuses its own)", len(recs))
	}

	bad := exec.Command(binPath, "submit", "--server", f.api.base, "--token", "sa_live_"+strings.Repeat("0", 64), pass)
	bad.Env = os.Environ()
	if out, err := bad.CombinedOutput(); bad.ProcessState.ExitCode() != 2 {
		t.Fatalf("bad token: exit %d (%v), want 2\n%s", bad.ProcessState.ExitCode(), err, out)
	}
}

// procStats reads a process's resident memory (bytes) and CPU time used.
func procStats(t *testing.T, pid int) (rss int64, cpu time.Duration) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			rss = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	var ut, st int64
	fmt.Sscan(fields[11], &ut)
	fmt.Sscan(fields[12], &st)
	return rss, time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
}

// One API node holds a thousand SSE clients of a live run on loopback;
// every client gets every event. The figures (memory and CPU the clients
// add) are logged for the issue.
func TestAThousandSSEClientsOnOneAPINode(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	f := newFleet(t)
	api := f.procs[0]
	const clients, actions = 1000, 5
	id := f.createRun(f.slowRecording(actions), map[string]any{"timingMode": "realistic", "timeout": 5000})
	rss0, cpu0 := procStats(t, api.cmd.Process.Pid)
	tr := &nethttp.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: 0}
	c := &apiClient{base: f.api.base, token: f.api.token, hc: &nethttp.Client{Transport: tr}}
	defer tr.CloseIdleConnections()
	counts := make([]int, clients)
	errs := make([]error, clients)
	var connected sync.WaitGroup
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for i := range clients {
		wg.Add(1)
		connected.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			errs[i] = stream(ctx, c, id, "", func(ev sseEvent) bool {
				once.Do(connected.Done)
				counts[i]++
				return ev.Name != queue.EventRunFinished
			})
			once.Do(connected.Done)
		}()
	}
	connected.Wait()
	rss1, cpu1 := procStats(t, api.cmd.Process.Pid)
	t.Logf("%d SSE clients connected: API RSS %d MiB -> %d MiB (+%.1f KiB per client), CPU %s to connect them",
		clients, rss0>>20, rss1>>20, float64(rss1-rss0)/1024/clients, cpu1-cpu0)
	// The worker starts only now, so the run is live for every client.
	f.worker("worker-a", "WORKER_CONCURRENCY=1")
	start := time.Now()
	wg.Wait()
	rss2, cpu2 := procStats(t, api.cmd.Process.Pid)
	t.Logf("the run's %d events reached all %d clients within %s; API CPU for the run %s, RSS %d MiB",
		2+2*actions+1, clients, time.Since(start).Round(time.Millisecond), cpu2-cpu1, rss2>>20)
	for i := range clients {
		if errs[i] != nil || counts[i] != 2+2*actions+1 {
			t.Fatalf("client %d: %d events, %v; want %d", i, counts[i], errs[i], 2+2*actions+1)
		}
	}
}

// Ctrl-C while submit waits cancels the run it created, and exits 1.
func TestSubmitCtrlCCancelsItsRuns(t *testing.T) {
	f := newFleet(t)
	f.worker("worker-a", "WORKER_CONCURRENCY=1")
	path := filepath.Join(t.TempDir(), "slow.json")
	if err := os.WriteFile(path, f.slowRecording(20), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := f.command("submit", "--server", f.api.base, "--wait", "--timing-mode", "realistic", path)
	cmd.Env = append(cmd.Env, "SAVEACTION_TOKEN="+f.api.token)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(out.String(), "ok     1 "); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no progress line in 60 s:\n%s", out.String())
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("submit did not end 30 s after Ctrl-C:\n%s", out.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %d after Ctrl-C, want 1:\n%s", code, out.String())
	}
	var runs []runView
	f.api.call("GET", "/api/v1/runs", nil, 200, &runs)
	if len(runs) != 1 {
		t.Fatalf("%d runs", len(runs))
	}
	run := f.waitFor(runs[0].ID, 30*time.Second, "finished", terminal)
	if run.Status != "cancelled" {
		t.Fatalf("run after Ctrl-C = %+v, want cancelled\n%s", run, out.String())
	}
}
