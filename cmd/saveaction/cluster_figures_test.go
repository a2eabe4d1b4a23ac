package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/saveaction/runner/persistence"
)

// TestClusterFigures measures what the issue asks to report; it only runs
// with SAVEACTION_CLUSTER_FIGURES=1 (minutes of real processes) and asserts
// nothing beyond each step happening: its output is the figures.
//
//	SAVEACTION_CLUSTER_FIGURES=1 go test -count=1 -v -timeout 30m -run TestClusterFigures ./cmd/saveaction/
func TestClusterFigures(t *testing.T) {
	if os.Getenv("SAVEACTION_CLUSTER_FIGURES") == "" {
		t.Skip("set SAVEACTION_CLUSTER_FIGURES=1 to measure")
	}
	kills, _ := strconv.Atoi(os.Getenv("SAVEACTION_CLUSTER_KILLS"))
	if kills <= 0 {
		kills = 10
	}
	for _, provider := range []string{"automanaged", "etcd"} {
		t.Run("kills/"+provider, func(t *testing.T) { measureKills(t, provider, kills) })
		t.Run("join and cancel/"+provider, func(t *testing.T) { measureJoinAndCancel(t, provider) })
	}
	t.Run("membership cost", measureMembershipCost)
}

// leftAt is when the first survivor logged that member left.
func leftAt(procs []*proc, member string, after time.Time) (time.Time, bool) {
	var first time.Time
	for _, p := range procs {
		for _, line := range strings.Split(p.logs.String(), "\n") {
			if !strings.Contains(line, `"worker left the cluster"`) || !strings.Contains(line, member+`"`) {
				continue
			}
			var l struct {
				Time time.Time `json:"timestamp"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Time.After(after) && (first.IsZero() || l.Time.Before(first)) {
				first = l.Time
			}
		}
	}
	return first, !first.IsZero()
}

func measureKills(t *testing.T, provider string, kills int) {
	ct := newClusterTest(t, provider, 3+kills+1, "LEASE_SECONDS=30")
	live := map[string]*proc{}
	next := 0
	startWorker := func() string {
		n := fmt.Sprintf("fg-%d", next)
		live[n] = ct.worker(n, append(ct.workerEnv(next), "WORKER_CONCURRENCY=1")...)
		next++
		return n
	}
	for range 3 {
		startWorker()
	}
	names := func() []string {
		var out []string
		for n := range live {
			out = append(out, n)
		}
		return out
	}
	ct.waitWorkers(60*time.Second, names()...)
	var detect, restart, join []time.Duration
	for i := 0; i < kills; i++ {
		id := ct.createRun(ct.slowRecording(4), map[string]any{"timingMode": "realistic", "timeout": 5000})
		r := ct.waitFor(id, 60*time.Second, "running", func(r runView) bool { return r.Status == "running" && r.WorkerNode != "" })
		owner := r.WorkerNode
		var all []*proc
		for _, p := range live {
			all = append(all, p)
		}
		_ = live[owner].cmd.Process.Signal(syscall.SIGKILL)
		killedAt := time.Now()
		delete(live, owner)
		ct.waitFor(id, 60*time.Second, "restarted", func(r runView) bool { return r.Attempt == 2 && r.Status == "running" })
		restart = append(restart, time.Since(killedAt))
		if at, ok := leftAt(all, owner, killedAt.Add(-time.Second)); ok {
			detect = append(detect, at.Sub(killedAt))
		}
		ct.waitFor(id, 90*time.Second, "finished", func(r runView) bool { return persistence.IsTerminal(persistence.Status(r.Status)) })
		started := time.Now()
		startWorker()
		ct.waitWorkers(60*time.Second, names()...)
		join = append(join, time.Since(started))
	}
	t.Logf("%s, %d kills: detection p50 %s p95 %s; restart p50 %s p95 %s; a new worker listed in the fleet p50 %s p95 %s",
		provider, kills, pct(detect, 50), pct(detect, 95), pct(restart, 50), pct(restart, 95), pct(join, 50), pct(join, 95))
}

// measureJoinAndCancel times a new worker taking work after it starts
// (process start to the first run started on it, with a run queued and the
// other workers drained; p50 over starts) and a cancel of a running run
// through the cluster's remote.
func measureJoinAndCancel(t *testing.T, provider string) {
	const starts = 5
	ct := newClusterTest(t, provider, starts+1, "LEASE_SECONDS=30")
	ct.worker("jc-0", append(ct.workerEnv(0), "WORKER_CONCURRENCY=1")...)
	ct.waitWorkers(60*time.Second, "jc-0")
	ct.ops.call("POST", "/api/v1/workers/jc-0/drain", nil, 200, nil)
	db, err := persistence.Open(context.Background(), ct.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var took []time.Duration
	for i := 1; i <= starts; i++ {
		name := fmt.Sprintf("jc-%d", i)
		id := ct.createRun(ct.slowRecording(2), map[string]any{"timingMode": "instant"})
		time.Sleep(500 * time.Millisecond) // queued, nobody to take it
		started := time.Now()
		p := ct.worker(name, append(ct.workerEnv(i), "WORKER_CONCURRENCY=1")...)
		ct.waitFor(id, 60*time.Second, "taken by the new worker", func(r runView) bool { return r.WorkerNode == name })
		var at time.Time
		if err := db.NewRaw("SELECT started_at FROM runs WHERE id = ?", id).Scan(context.Background(), &at); err != nil {
			t.Fatal(err)
		}
		took = append(took, at.Sub(started))
		t.Logf("%s: %s started its first run %s after its process started (joined the cluster at %s, worker started at %s)",
			provider, name, at.Sub(started).Round(time.Millisecond), logAt(p, `"joined the cluster"`, started), logAt(p, `"worker started"`, started))
		ct.waitFor(id, 60*time.Second, "finished", func(r runView) bool { return persistence.IsTerminal(persistence.Status(r.Status)) })
		ct.ops.call("POST", "/api/v1/workers/"+name+"/drain", nil, 200, nil)
	}
	t.Logf("%s: a new worker started its first (queued) run after its process started: p50 %s, min %s, max %s over %d starts %v",
		provider, pct(took, 50), pct(took, 0), pct(took, 100), starts, took)

	ct.ops.call("POST", fmt.Sprintf("/api/v1/workers/jc-%d/resume", starts), nil, 200, nil)
	id := ct.createRun(ct.slowRecording(20), map[string]any{"timingMode": "realistic", "timeout": 5000})
	ct.waitFor(id, 60*time.Second, "running", func(r runView) bool { return r.Status == "running" })
	at := time.Now()
	ct.api.call("POST", "/api/v1/runs/"+id+"/cancel", nil, 200, nil)
	ct.waitFor(id, 10*time.Second, "cancelled", func(r runView) bool { return r.Status == "cancelled" })
	t.Logf("%s: cancel of a running run answered and settled %s after the request", provider, time.Since(at))
}

// logAt is when p first logged a line containing what, after start.
func logAt(p *proc, what string, start time.Time) string {
	for _, line := range strings.Split(p.logs.String(), "\n") {
		var l struct {
			Time time.Time `json:"timestamp"`
		}
		if strings.Contains(line, what) && json.Unmarshal([]byte(line), &l) == nil {
			return l.Time.Sub(start).Round(time.Millisecond).String()
		}
	}
	return "?"
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)].Round(time.Millisecond)
}

// procCPU is a process's user+system CPU time in clock ticks, and its RSS in KiB.
func procCPU(pid int) (ticks int64, rssKiB int64) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	i := strings.LastIndexByte(string(stat), ')')
	f := strings.Fields(string(stat)[i+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			rssKiB, _ = strconv.ParseInt(strings.Fields(line)[1], 10, 64)
		}
	}
	return ut + st, rssKiB
}

// tcpCounters are the data segments and bytes each TCP socket of pids has
// sent, by socket (pid, local, peer), from ss; sockets to skipPorts (as peer)
// are left out.
func tcpCounters(t *testing.T, pids map[int]bool, skipPorts ...string) map[string][2]int64 {
	out, err := exec.Command("ss", "-tinpH").Output()
	if err != nil {
		t.Skipf("ss: %v", err)
	}
	res := map[string][2]int64{}
	key := ""
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			key = ""
			f := strings.Fields(line)
			if len(f) < 6 {
				continue
			}
			_, peerPort, _ := strings.Cut(f[4][strings.LastIndexByte(f[4], ':'):], ":")
			if slices.Contains(skipPorts, peerPort) {
				continue
			}
			i := strings.Index(line, "pid=")
			if i < 0 {
				continue
			}
			pidStr, _, _ := strings.Cut(line[i+4:], ",")
			pid, _ := strconv.Atoi(pidStr)
			if pids[pid] {
				key = pidStr + " " + f[3] + " " + f[4]
			}
			continue
		}
		if key == "" {
			continue
		}
		var v [2]int64
		for _, tok := range strings.Fields(line) {
			name, val, ok := strings.Cut(tok, ":")
			if !ok {
				continue
			}
			n, _ := strconv.ParseInt(val, 10, 64)
			switch name {
			case "data_segs_out":
				v[0] = n
			case "bytes_sent":
				v[1] = n
			}
		}
		res[key] = v
		key = ""
	}
	return res
}

// measureMembershipCost idles 3 and 6 workers with and without a cluster
// and reports each worker's CPU and memory, and the TCP traffic the
// workers send to anything but PostgreSQL and Redis (the membership:
// gossip between the members' remotes, automanaged health polls, etcd
// keep-alives and watches), in data segments (about one a message) and
// bytes per second; sockets opened and closed within the window are missed.
func measureMembershipCost(t *testing.T) {
	const idle = 20 * time.Second
	for _, provider := range []string{"none", "automanaged", "etcd"} {
		for _, n := range []int{3, 6} {
			var ct *clusterTest
			if provider == "none" {
				ct = &clusterTest{fleet: newFleet(t), workerEnv: func(int) []string { return nil }}
			} else {
				ct = newClusterTest(t, provider, n)
			}
			var ps []*proc
			for i := range n {
				ps = append(ps, ct.worker(fmt.Sprintf("mc-%s-%d-%d", provider, n, i), ct.workerEnv(i)...))
			}
			time.Sleep(10 * time.Second) // start-up done (measuring, not waiting for an event)
			before := make([]int64, n)
			pids := map[int]bool{}
			for i, p := range ps {
				before[i], _ = procCPU(p.cmd.Process.Pid)
				pids[p.cmd.Process.Pid] = true
			}
			tcpBefore := tcpCounters(t, pids, "5432", "6379")
			time.Sleep(idle)
			var segs, bytes int64
			for k, v := range tcpCounters(t, pids, "5432", "6379") {
				b := tcpBefore[k]
				segs += v[0] - b[0]
				bytes += v[1] - b[1]
			}
			t.Logf("membership traffic, %s, %d idle workers: %.1f messages (TCP data segments) and %.1f KiB sent per second by the fleet, %.1f and %.2f KiB per worker",
				provider, n, float64(segs)/idle.Seconds(), float64(bytes)/1024/idle.Seconds(),
				float64(segs)/idle.Seconds()/float64(n), float64(bytes)/1024/idle.Seconds()/float64(n))
			var cpu, rss int64
			for i, p := range ps {
				c, r := procCPU(p.cmd.Process.Pid)
				cpu += c - before[i]
				rss += r
			}
			// Clock ticks are 1/100 s on Linux.
			t.Logf("membership cost, %s, %d idle workers: CPU %.2f%% of a core per worker, RSS %d MiB per worker",
				provider, n, float64(cpu)/float64(n)/idle.Seconds(), rss/int64(n)/1024)
			for _, p := range ps {
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
			}
			for _, p := range ps {
				p.exited(20 * time.Second)
			}
		}
	}
}
