package actors_test

// Measurements of the worker runtime for the closing note: cancel latency,
// throughput per slot count and memory per concurrent run. They run only
// under -bench, against real PostgreSQL, Redis and Chromium:
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 20m ./actors/
//
// Each benchmark does a fixed amount of work whatever b.N is (its figures
// come from samples, not from the loop), so -benchtime 1x is the intended
// setting.

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saveaction/runner/actors"
	"github.com/saveaction/runner/browser"
	"github.com/saveaction/runner/persistence"
)

// benv is the runtime tests' env with the benchmark's own helpers.
type benv struct {
	*env
	tb testing.TB
}

func newBenv(tb testing.TB) *benv {
	tb.Helper()
	return &benv{env: newEnv(tb), tb: tb}
}

// startWorker starts a coordinator with concurrency slots over a pool whose
// shared Chromium is already launched (a worker that has been up a while),
// so no measurement pays the first launch. stop shuts the worker down and
// closes the pool; it also runs at cleanup. beforeStart, when set, is
// called with the warm browser's pid just before the coordinator starts.
func (e *benv) startWorker(concurrency int, beforeStart func(warm int)) (pool *actors.Pool, warm int, stop func()) {
	e.tb.Helper()
	pool = actors.NewPool(actors.PoolConfig{Launch: func(ctx context.Context) (*browser.Browser, error) {
		return browser.Launch(ctx, browser.LaunchOptions{Headless: true})
	}})
	h, err := pool.Acquire(context.Background(), actors.IsolationContext)
	if err != nil {
		pool.Close()
		e.tb.Fatal(err)
	}
	warm = h.Browser().PID()
	h.Release(false)
	settle(groupsOf([]int{warm}))
	if beforeStart != nil {
		beforeStart(warm)
	}
	w, err := actors.StartWorker(context.Background(), actors.Deps{
		System: e.sys, Runs: e.runs, Queue: e.q, Pool: pool, Log: e.log, Worker: "bench-" + uuid.NewString()[:6],
		Concurrency: concurrency, Signal: e.signal,
		ScreenshotDir: e.tb.TempDir(), VideoDir: e.tb.TempDir(), FilesDir: e.tb.TempDir(),
	})
	if err != nil {
		pool.Close()
		e.tb.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = w.Shutdown(ctx, 0)
			pool.Close()
		})
	}
	e.tb.Cleanup(stop)
	return pool, warm, stop
}

func (e *benv) get(id uuid.UUID) *persistence.Run {
	e.tb.Helper()
	r, err := e.runs.Get(context.Background(), id)
	if err != nil {
		e.tb.Fatal(err)
	}
	return r
}

func isAction(id uuid.UUID, actionID string) func(actors.Event) bool {
	return func(ev actors.Event) bool {
		return ev.Kind == "action" && ev.RunID == id.String() && ev.Detail == actionID
	}
}

// percentile is the nearest-rank percentile p (0–100) of sorted xs.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// groupMem is the memory of a set of process groups.
type groupMem struct {
	rssKB, pssKB int64
	procs        int // live processes
	zombies      int
}

// groupsMemory sums VmRSS and Pss (smaps_rollup) over every process whose
// process group is in pgids. RSS counts pages shared between processes
// (Chromium's binary and libraries) once per process; Pss splits them.
func groupsMemory(pgids map[int]bool) groupMem {
	var m groupMem
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		pgrp, state, ok := procStat(pid)
		if !ok || !pgids[pgrp] {
			continue
		}
		if state == 'Z' || state == 'X' {
			m.zombies++
			continue
		}
		m.procs++
		m.rssKB += procKB("/proc/"+ent.Name()+"/status", "VmRSS:")
		m.pssKB += procKB("/proc/"+ent.Name()+"/smaps_rollup", "Pss:")
	}
	return m
}

// procStat reads a process's group and state from /proc/<pid>/stat.
func procStat(pid int) (pgrp int, state byte, ok bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(stat[i+1:])) // state, ppid, pgrp, ...
	if len(f) < 3 {
		return 0, 0, false
	}
	pgrp, err = strconv.Atoi(f[2])
	return pgrp, f[0][0], err == nil
}

// procKB returns the kB value of the first line of file starting with key.
func procKB(file, key string) int64 {
	fh, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer func() { _ = fh.Close() }()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// groupsOf maps browser pids to their process groups.
func groupsOf(pids []int) map[int]bool {
	out := map[int]bool{}
	for _, pid := range pids {
		if g, err := syscall.Getpgid(pid); err == nil {
			out[g] = true
		}
	}
	return out
}

// checkGone reports (as a benchmark error) processes left in groups after
// their pool was closed.
func checkGone(tb testing.TB, groups map[int]bool) {
	tb.Helper()
	var m groupMem
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m = groupsMemory(groups); m.procs == 0 && m.zombies == 0 {
			return
		}
	}
	tb.Errorf("after the pool closed, %d Chromium processes (%d zombies) remain in groups %v", m.procs, m.zombies, groups)
}

// settle waits (up to 3 s) until the process count of groups has not
// changed for half a second: Chromium starts its helper processes after
// Launch returns, and there is no event for it.
func settle(groups map[int]bool) {
	last, since := -1, time.Now()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n := groupsMemory(groups).procs; n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= 500*time.Millisecond {
			return
		}
	}
}

// clockTick is USER_HZ, the unit of CPU times in /proc (100 on Linux).
const clockTick = 10 * time.Millisecond

// groupsCPU is the CPU time used by every live process of groups and by
// the children they have reaped (utime+stime+cutime+cstime).
func groupsCPU(groups map[int]bool) time.Duration {
	var ticks int64
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		if _, err := strconv.Atoi(ent.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + ent.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:])) // state is field 3 overall, utime field 14
		if len(f) < 15 {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); !groups[g] {
			continue
		}
		for _, k := range f[11:15] {
			n, _ := strconv.ParseInt(k, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * clockTick
}

// selfCPU is the CPU time of this test process.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hostCPU reads the machine's total and idle CPU time from /proc/stat, to
// tell how busy the (shared) machine was during a measurement.
type hostCPU struct{ total, idle int64 }

func readHostCPU() hostCPU {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostCPU{}
	}
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	f := strings.Fields(string(line)) // cpu user nice system idle iowait irq softirq steal
	var h hostCPU
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i < 8 {
			h.total += n
		}
		if i == 3 || i == 4 {
			h.idle += n
		}
	}
	return h
}

// busySince is the share of the machine's CPU (all cores) in use since h, in percent.
func (h hostCPU) busySince() float64 {
	now := readHostCPU()
	if now.total == h.total {
		return 0
	}
	return 100 * (1 - float64(now.idle-h.idle)/float64(now.total-h.total))
}

// BenchmarkCancelLatency cancels 20 running runs, each once its second
// action is done, the way the API does: record cancel_requested_at, then
// Canceller.CancelRun. Latency is from the request until the run row is
// cancelled (Canceller polls the row every 5 ms here).
func BenchmarkCancelLatency(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts map[string]any
	}{
		{"isolation=context", nil},
		{"isolation=browser", map[string]any{"isolation": "browser"}},
	} {
		b.Run(mode.name, func(b *testing.B) { benchCancel(b, mode.opts, 20) })
	}
}

func benchCancel(b *testing.B, opts map[string]any, n int) {
	e := newBenv(b)
	pool, warm, stop := e.startWorker(1, nil)
	warmGroup := groupsOf([]int{warm})
	idleProcs := groupsMemory(warmGroup).procs
	c := &actors.Canceller{System: e.sys, Runs: e.runs, Poll: 5 * time.Millisecond}
	rec := e.recording(10, 1000) // realistic timing: about ten seconds
	ctx := context.Background()
	seen := map[int]bool{}
	var lat, gone []float64
	var unconfirmed int

	host := readHostCPU()
	b.ResetTimer()
	for i := 0; i < n; i++ {
		id := e.createRun(rec, "realistic", opts)
		e.waitEvent(30*time.Second, "second action", isAction(id, "act_002"))
		var own []int
		for _, pid := range pool.PIDs() {
			if pid != warm {
				own = append(own, pid)
			}
		}
		ownGroups := groupsOf(own)
		for g := range ownGroups {
			seen[g] = true
		}

		start := time.Now()
		if _, err := e.db.NewUpdate().Model((*persistence.Run)(nil)).Set("cancel_requested_at = now()").Where("id = ?", id).Exec(ctx); err != nil {
			b.Fatal(err)
		}
		confirmed, err := c.CancelRun(ctx, e.get(id), 5*time.Second)
		took := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if !confirmed {
			unconfirmed++
		}
		lat = append(lat, ms(took))
		// Wait for the run to be final either way, so the next one gets the slot.
		var run *persistence.Run
		for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if run = e.get(id); persistence.IsTerminal(run.Status) || time.Now().After(deadline) {
				break
			}
		}
		if run.Status != persistence.StatusCancelled {
			b.Errorf("cancel %d: run %s is %s, want cancelled", i, id, run.Status)
		}
		if len(ownGroups) > 0 {
			for deadline := time.Now().Add(5 * time.Second); groupsMemory(ownGroups).procs > 0 && time.Now().Before(deadline); {
				time.Sleep(2 * time.Millisecond)
			}
			if m := groupsMemory(ownGroups); m.procs > 0 {
				b.Errorf("cancel %d: the run's own Chromium still has %d processes 5 s after the cancel", i, m.procs)
			}
			gone = append(gone, ms(time.Since(start)))
		}
	}
	b.StopTimer()
	busy := host.busySince()

	// Renderers of cancelled contexts should be gone from the warm browser.
	var leftProcs int
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if leftProcs = groupsMemory(warmGroup).procs; leftProcs <= idleProcs || time.Now().After(deadline) {
			break
		}
	}
	stop()
	for g := range warmGroup {
		seen[g] = true
	}
	checkGone(b, seen)

	slices.Sort(lat)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(percentile(lat, 50), "p50-ms")
	b.ReportMetric(percentile(lat, 95), "p95-ms")
	b.ReportMetric(lat[len(lat)-1], "max-ms")
	b.ReportMetric(float64(unconfirmed), "unconfirmed")
	b.ReportMetric(float64(leftProcs-idleProcs), "extra-procs")
	b.ReportMetric(busy, "host-busy-%")
	if len(gone) > 0 {
		slices.Sort(gone)
		b.ReportMetric(percentile(gone, 95), "p95-gone-ms")
	}
	b.Logf("%d cancels: latency ms %v", n, lat)
	if len(gone) > 0 {
		b.Logf("own Chromium gone after ms %v", gone)
	}
	b.Logf("warm browser processes: %d idle, %d after the cancels", idleProcs, leftProcs)
}

// BenchmarkThroughput runs 24 queued 10-action instant-mode recordings on
// a worker with 1, 2 and 4 slots; the clock runs from the worker's start
// (its shared Chromium already warm) until the last run is final.
func BenchmarkThroughput(b *testing.B) {
	for _, slots := range []int{1, 2, 4} {
		b.Run("slots="+strconv.Itoa(slots), func(b *testing.B) { benchThroughput(b, slots, 24) })
	}
}

func benchThroughput(b *testing.B, slots, n int) {
	e := newBenv(b)
	rec := e.recording(10, 100)
	ids := make([]uuid.UUID, n)
	want := map[string]bool{}
	for i := range ids {
		ids[i] = e.createRun(rec, "instant", nil)
		want[ids[i].String()] = true
	}
	var start time.Time
	var host hostCPU
	var cpu0, self0 time.Duration
	pool, warm, stop := e.startWorker(slots, func(warm int) {
		b.ResetTimer()
		start, host, cpu0, self0 = time.Now(), readHostCPU(), groupsCPU(groupsOf([]int{warm})), selfCPU()
	})
	done := 0
	deadline := time.Now().Add(100 * time.Second)
	for done < n {
		e.mu.Lock()
		done = 0
		for _, ev := range e.events {
			if ev.Kind == "finished" && want[ev.RunID] {
				done++
			}
		}
		e.mu.Unlock()
		if done >= n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d runs finished within 100 s", done, n)
		}
		select {
		case <-e.notify:
		case <-time.After(20 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	groups := groupsOf(append(pool.PIDs(), warm))
	chromeCPU, goCPU := groupsCPU(groups)-cpu0, selfCPU()-self0
	busy := host.busySince()
	procs := groupsMemory(groups).procs
	stop()
	checkGone(b, groups)

	var sum int64
	var durs []float64
	for _, id := range ids {
		r := e.get(id)
		if r.Status != persistence.StatusPassed || r.ActionsExecuted != 10 {
			b.Errorf("run %s = %s, %d executed (%v)", id, r.Status, r.ActionsExecuted, r.ErrorMessage)
		}
		if r.DurationMs != nil {
			sum += *r.DurationMs
			durs = append(durs, float64(*r.DurationMs))
		}
	}
	slices.Sort(durs)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(n)/elapsed.Minutes(), "runs/min")
	b.ReportMetric(float64(sum)/float64(n), "ms/run")
	b.ReportMetric(percentile(durs, 95), "p95-ms/run")
	b.ReportMetric(ms(elapsed)/float64(n), "wall-ms/run")
	b.ReportMetric(ms(chromeCPU)/float64(n), "chromium-cpu-ms/run")
	b.ReportMetric(ms(goCPU)/float64(n), "go-cpu-ms/run")
	b.ReportMetric(busy, "host-busy-%")
	b.Logf("%d runs in %s on %d slots; Chromium processes at the end: %d", n, elapsed.Round(time.Millisecond), slots, procs)
}

// BenchmarkMemoryPerRun starts 4 concurrent ten-second runs and, once each
// has done its third action, sums the memory of every process in the
// pool's Chromium process groups, minus the idle warm browser measured
// before the runs, divided by 4.
func BenchmarkMemoryPerRun(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts map[string]any
	}{
		{"isolation=context", nil},
		{"isolation=browser", map[string]any{"isolation": "browser"}},
	} {
		b.Run(mode.name, func(b *testing.B) { benchMemory(b, mode.opts, 4) })
	}
}

func benchMemory(b *testing.B, opts map[string]any, n int) {
	e := newBenv(b)
	pool, warm, stop := e.startWorker(n, nil)
	time.Sleep(time.Second) // let the idle browser settle before its baseline
	base := groupsMemory(groupsOf([]int{warm}))
	rec := e.recording(10, 1000)
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = e.createRun(rec, "realistic", opts)
	}
	b.ResetTimer()
	for _, id := range ids {
		e.waitEvent(60*time.Second, "third action", isAction(id, "act_003"))
	}
	for _, id := range ids {
		if r := e.get(id); r.Status != persistence.StatusRunning {
			b.Fatalf("run %s is %s while measuring, want running", id, r.Status)
		}
	}
	var rss, pss int64
	var procs int
	groups := groupsOf(pool.PIDs())
	const samples = 3
	for i := 0; i < samples; i++ {
		m := groupsMemory(groups)
		rss, pss, procs = rss+m.rssKB, pss+m.pssKB, max(procs, m.procs)
		time.Sleep(300 * time.Millisecond)
	}
	rss, pss = rss/samples, pss/samples
	b.StopTimer()
	for _, id := range ids {
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			r := e.get(id)
			if persistence.IsTerminal(r.Status) {
				if r.Status != persistence.StatusPassed {
					b.Errorf("run %s = %s (%v)", id, r.Status, r.ErrorMessage)
				}
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("run %s still %s", id, r.Status)
			}
		}
	}
	stop()
	checkGone(b, groups)

	mb := func(kb int64) float64 { return float64(kb) / 1024 }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(mb(rss-base.rssKB)/float64(n), "RSS-MB/run")
	b.ReportMetric(mb(pss-base.pssKB)/float64(n), "PSS-MB/run")
	b.ReportMetric(mb(base.pssKB), "idle-PSS-MB")
	b.Logf("idle warm browser: %d processes, RSS %.0f MB, PSS %.0f MB; with %d runs: %d processes in %d groups, RSS %.0f MB, PSS %.0f MB",
		base.procs, mb(base.rssKB), mb(base.pssKB), n, procs, len(groups), mb(rss), mb(pss))
}
