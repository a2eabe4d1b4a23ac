// Package fleetsim is the fleet driver of `saveaction bench fleet`: it
// starts API and worker processes of the real binary on 127.0.0.1, with
// workers on the simulated replayer, against a PostgreSQL cluster and a
// redis-server of its own; pushes runs over the REST API at a given rate
// while killing and restarting its parts; and then checks from PostgreSQL
// that no run was lost, stuck, run twice at once, or left with duplicate
// or missing action rows. It measures what the coordination layer costs
// per run on the way (measure.go).
package fleetsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	nethttp "net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultWorkers  = 50
	DefaultSlots    = 2
	DefaultAPINodes = 2
	DefaultRate     = 10
	DefaultDuration = time.Minute
	DefaultActions  = 5
	DefaultGapMs    = 400
	DefaultLease    = 6 * time.Second
	DefaultDrain    = 2 * time.Minute
)

// Config is one run of the driver.
type Config struct {
	// Bin is the saveaction binary every process runs.
	Bin string
	// Workers is how many worker processes (default DefaultWorkers), each
	// with Slots runs at once (default DefaultSlots); APINodes how many API
	// processes share the pushes (default DefaultAPINodes).
	Workers, Slots, APINodes int
	// Rate is how many runs are created per second (default DefaultRate)
	// for Duration (default DefaultDuration).
	Rate     float64
	Duration time.Duration
	// Actions is how many actions each recording has (default
	// DefaultActions), recorded GapMs apart (default DefaultGapMs) and
	// replayed in realistic timing: a run lasts about Actions-1 gaps.
	Actions int
	GapMs   float64
	// FailureRate and CrashRate are the simulated replayer's
	// (SIMULATION_FAILURE_RATE, SIMULATION_CRASH_RATE).
	FailureRate, CrashRate float64
	// Lease is the workers' LEASE_SECONDS (default DefaultLease, short so a
	// killed worker's runs come back soon).
	Lease time.Duration
	// Grace is the workers' SHUTDOWN_GRACE_SECONDS (default 1 s: a SIGTERM
	// hands runs back rather than finishing them).
	Grace time.Duration

	// Churn, spread over the push phase: Kills workers killed with SIGKILL
	// and restarted, Terms rolling SIGTERMs (one worker at a time, each
	// restarted), a restart of Redis and of PostgreSQL, and a burst of
	// Cancels cancel requests for runs just created.
	Kills, Terms                  int
	RedisRestart, PostgresRestart bool
	Cancels                       int

	// Backlog, when > 0, replaces the push phase: that many runs are
	// queued before any worker starts, then the workers drain them.
	Backlog int
	// Drain bounds the wait for every run to end after the pushes
	// (default DefaultDrain).
	Drain time.Duration
	// Dir holds the private servers' data and the processes' storage
	// (default a new temporary folder, removed at the end).
	Dir string
	// Progress receives one line per phase (nil: none).
	Progress io.Writer
}

// ageInterval is how often the queue gauges are sampled.
const ageInterval = 2 * time.Second

// churned reports whether any churn is configured.
func (c *Config) churned() bool {
	return c.Kills > 0 || c.Terms > 0 || c.RedisRestart || c.PostgresRestart || c.Cancels > 0
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.Slots <= 0 {
		c.Slots = DefaultSlots
	}
	if c.APINodes <= 0 {
		c.APINodes = DefaultAPINodes
	}
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
	if c.Duration <= 0 {
		c.Duration = DefaultDuration
	}
	if c.Actions <= 0 {
		c.Actions = DefaultActions
	}
	if c.GapMs < 0 {
		c.GapMs = 0
	}
	if c.Lease <= 0 {
		c.Lease = DefaultLease
	}
	if c.Grace <= 0 {
		c.Grace = time.Second
	}
	if c.Drain <= 0 {
		c.Drain = DefaultDrain
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// driver is the state of one Run.
type driver struct {
	cfg    Config
	dir    string
	pg     *privatePostgres
	rds    *privateRedis
	env    []string
	token  string
	apis   []*proc
	bases  []string
	mu     sync.Mutex
	procs  []*proc   // every process started, dead or alive
	slots  []*proc   // the current process of each worker name
	names  []string  // worker names
	replay []replayB // replay bounds seen in worker logs
	// metricsPorts is where each worker's current process serves /metrics.
	metricsPorts map[string]int
	runs         []created
	recID        string
	start        time.Time
	client       *nethttp.Client

	rejected  atomic.Int64 // creates answered with an error (an outage)
	cancelled atomic.Int64
	churn     []string   // what was done, when
	logMu     sync.Mutex // serialises writes to cfg.Progress
}

type created struct {
	id string
	at time.Time
}

// replayB is one bound of a simulated replay, from a worker's log.
type replayB struct {
	p     *proc
	run   string
	at    time.Time
	began bool
}

func (d *driver) logf(format string, args ...any) {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	fmt.Fprintf(d.cfg.Progress, "[%6.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *driver) note(format string, args ...any) {
	s := fmt.Sprintf("%6.1fs ", time.Since(d.start).Seconds()) + fmt.Sprintf(format, args...)
	d.mu.Lock()
	d.churn = append(d.churn, s)
	d.mu.Unlock()
	d.logf("%s", fmt.Sprintf(format, args...))
}

// Run drives one fleet and returns what it measured and found. The error
// is for a driver that could not do its job (a server that would not
// start); the guarantees broken are Report.Problems.
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	cfg.defaults()
	d := &driver{cfg: cfg, start: time.Now(), client: &nethttp.Client{Timeout: 30 * time.Second,
		Transport: &nethttp.Transport{MaxIdleConnsPerHost: 256}}}
	if cfg.Bin == "" {
		return nil, errors.New("fleet: no binary")
	}
	d.dir = cfg.Dir
	if d.dir == "" {
		if d.dir, err = os.MkdirTemp("", "sa-fleet-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(d.dir)
	}
	if err := os.Chmod(d.dir, 0o755); err != nil {
		return nil, err
	}
	defer d.cleanup()
	if err := d.setup(ctx); err != nil {
		return nil, err
	}
	if cfg.Backlog > 0 {
		return d.backlog(ctx)
	}
	return d.push(ctx)
}

func (d *driver) setup(ctx context.Context) error {
	cfg := d.cfg
	d.logf("private PostgreSQL and Redis under %s", d.dir)
	var err error
	if d.pg, err = newPrivatePostgres(d.dir); err != nil {
		return err
	}
	// Each worker's pool holds a few connections; the API nodes more.
	if err := d.pg.start(cfg.Workers*6 + cfg.APINodes*25 + 100); err != nil {
		d.pg = nil
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	d.rds = &privateRedis{port: port, dir: filepath.Join(d.dir, "redis")}
	if err := os.MkdirAll(d.rds.dir, 0o755); err != nil {
		return err
	}
	if err := d.rds.start(ctx); err != nil {
		return err
	}
	storage := filepath.Join(d.dir, "storage")
	d.env = append(os.Environ(),
		"DATABASE_URL="+d.pg.dsn(), "REDIS_URL="+d.rds.url(), "REDIS_PREFIX=scale:", "LOG_FORMAT=json", "LOG_LEVEL=info",
		"VIDEO_STORAGE_PATH="+filepath.Join(storage, "videos"), "SCREENSHOT_STORAGE_PATH="+filepath.Join(storage, "screenshots"),
		"FILES_PATH="+filepath.Join(storage, "files"), "ARTIFACT_STORE="+filepath.Join(storage, "artifacts"),
		"METRICS_PORT=0", "RATE_LIMIT_PER_MINUTE=1000000", "CLUSTER_PROVIDER=none", "ACTOR_HOST=127.0.0.1", "ACTOR_PORT=0",
		"WORKER_REPLAYER=simulated", fmt.Sprintf("WORKER_CONCURRENCY=%d", cfg.Slots),
		fmt.Sprintf("SIMULATION_FAILURE_RATE=%g", cfg.FailureRate), fmt.Sprintf("SIMULATION_CRASH_RATE=%g", cfg.CrashRate),
		fmt.Sprintf("LEASE_SECONDS=%d", int(cfg.Lease.Seconds())), fmt.Sprintf("SHUTDOWN_GRACE_SECONDS=%d", int(cfg.Grace.Seconds())),
	)
	if out, err := d.command("migrate", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("migrate: %v\n%s", err, out)
	}
	if out, err := d.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		return fmt.Errorf("pg_stat_statements: %v\n%s", err, out)
	}
	out, err := d.command("token", "create", "--email", "fleet@example.com", "--name", "fleet").Output()
	if err != nil {
		return fmt.Errorf("token create: %w", err)
	}
	d.token = strings.TrimSpace(string(out))
	for i := 0; i < cfg.APINodes; i++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		p, err := d.spawn(fmt.Sprintf("api-%d", i), "api", fmt.Sprintf("PORT=%d", port), "HOST=127.0.0.1")
		if err != nil {
			return err
		}
		d.apis = append(d.apis, p)
		d.bases = append(d.bases, fmt.Sprintf("http://127.0.0.1:%d", port))
	}
	for _, b := range d.bases {
		if err := d.waitHealthy(ctx, b); err != nil {
			return err
		}
	}
	d.logf("%d API nodes up", len(d.bases))
	var rec struct {
		ID string `json:"id"`
	}
	if code, body, err := d.call(ctx, d.bases[0], "POST", "/api/v1/recordings", d.recording(), &rec); err != nil || code != 201 {
		return fmt.Errorf("upload recording: %d %s %v", code, body, err)
	}
	d.recID = rec.ID
	for i := 0; i < cfg.Workers; i++ {
		d.names = append(d.names, fmt.Sprintf("sim-%03d", i))
	}
	d.slots = make([]*proc, cfg.Workers)
	return nil
}

func (d *driver) command(args ...string) *exec.Cmd {
	cmd := exec.Command(d.cfg.Bin, args...)
	cmd.Env = d.env
	return cmd
}

// psql runs SQL on the private cluster through the binary-free route:
// the psql client of the PostgreSQL installation.
func (d *driver) psql(sql string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(d.pg.bin, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", "127.0.0.1", "-p", fmt.Sprint(d.pg.port), "-U", "root", "-d", "saveaction", "-c", sql)
	return cmd.CombinedOutput()
}

func (d *driver) spawn(name, kind string, env ...string) (*proc, error) {
	e := append(append([]string(nil), d.env...), env...)
	p, err := startProc(d.cfg.Bin, name, kind, e, []string{kind}, d.onLine)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.procs = append(d.procs, p)
	d.mu.Unlock()
	return p, nil
}

func (d *driver) onLine(p *proc, l logLine) {
	var began bool
	switch l.Msg {
	case "simulated replay began":
		began = true
	case "simulated replay ended":
	default:
		return
	}
	d.mu.Lock()
	d.replay = append(d.replay, replayB{p: p, run: l.RunID, at: l.Time, began: began})
	d.mu.Unlock()
}

// startWorker starts (or restarts) worker i under its name.
func (d *driver) startWorker(i int) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	p, err := d.spawn(d.names[i], "worker", "WORKER_NAME="+d.names[i], fmt.Sprintf("METRICS_PORT=%d", port))
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.slots[i] = p
	if d.metricsPorts == nil {
		d.metricsPorts = map[string]int{}
	}
	d.metricsPorts[d.names[i]] = port
	d.mu.Unlock()
	return nil
}

func (d *driver) worker(i int) *proc {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.slots[i]
}

// startWorkers starts every worker, a few at a time so 100 Go runtimes
// starting at once do not starve each other, and waits until all pull.
func (d *driver) startWorkers(ctx context.Context) error {
	for i := range d.names {
		if err := d.startWorker(i); err != nil {
			return err
		}
		if i%10 == 9 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	retries := map[int]int{}
	for {
		ready := 0
		for i := range d.names {
			p := d.worker(i)
			if p.exited() {
				// A loaded host can make the first connection time out:
				// try again a few times before calling it broken.
				if retries[i] == 3 {
					return fmt.Errorf("worker %s exited at start:\n%s", p.name, p.lastLines())
				}
				retries[i]++
				if err := d.startWorker(i); err != nil {
					return err
				}
				continue
			}
			if p.isReady() {
				ready++
			}
		}
		if ready == len(d.names) {
			d.logf("%d workers × %d slots up", ready, d.cfg.Slots)
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("only %d of %d workers started", ready, len(d.names))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (d *driver) waitHealthy(ctx context.Context, base string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := d.client.Get(base + "/api/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("API %s never became healthy", base)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// call makes one API request; out receives a 2xx JSON answer.
func (d *driver) call(ctx context.Context, base, method, path string, body, out any) (int, string, error) {
	var rd io.Reader
	if body != nil {
		raw, ok := body.([]byte)
		if !ok {
			raw, _ = json.Marshal(body)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := nethttp.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 == 2 && out != nil {
		// Answers are {"success": true, "data": ...}.
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		if json.Unmarshal(raw, &env) == nil && len(env.Data) > 0 {
			_ = json.Unmarshal(env.Data, out)
		} else {
			_ = json.Unmarshal(raw, out)
		}
	}
	return resp.StatusCode, string(raw), nil
}

// recording is Actions clicks GapMs apart; the simulated replayer never
// loads its page.
func (d *driver) recording() []byte {
	acts := make([]map[string]any, 0, d.cfg.Actions)
	for i := 0; i < d.cfg.Actions; i++ {
		acts = append(acts, map[string]any{"id": fmt.Sprintf("act_%03d", i+1), "type": "click",
			"timestamp": 1764645600000.0 + float64(i)*d.cfg.GapMs, "url": "http://127.0.0.1:9/",
			"selector": map[string]any{"id": "go", "css": "#go", "priority": []string{"id", "css"}}})
	}
	rec := map[string]any{"id": "rec_fleet", "version": "1.0.0", "testName": "fleet", "url": "http://127.0.0.1:9/",
		"startTime": "2026-01-01T00:00:00Z", "viewport": map[string]any{"width": 800, "height": 600}, "userAgent": "fleet", "actions": acts}
	raw, _ := json.Marshal(rec)
	return raw
}

// create makes one run through API node n (round robin by the caller).
func (d *driver) create(ctx context.Context, n int) {
	var run struct {
		ID string `json:"id"`
	}
	code, body, err := d.call(ctx, d.bases[n%len(d.bases)], "POST", "/api/v1/runs",
		map[string]any{"recordingId": d.recID, "options": map[string]any{"timingMode": "realistic", "timeout": 5000}}, &run)
	if err != nil || code != 201 || run.ID == "" {
		if d.rejected.Add(1) <= 3 {
			d.logf("create refused: %d %.200s %v", code, body, err)
		}
		return
	}
	d.mu.Lock()
	d.runs = append(d.runs, created{id: run.ID, at: time.Now()})
	d.mu.Unlock()
}

func (d *driver) createdCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.runs)
}

// cancelBurst asks for the cancel of the n runs created last.
func (d *driver) cancelBurst(ctx context.Context, n int) {
	d.mu.Lock()
	var ids []string
	for i := len(d.runs) - 1; i >= 0 && len(ids) < n; i-- {
		ids = append(ids, d.runs[i].id)
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, id string) {
			defer wg.Done()
			defer func() { <-sem }()
			if code, _, err := d.call(ctx, d.bases[i%len(d.bases)], "POST", "/api/v1/runs/"+id+"/cancel", nil, nil); err == nil && code/100 == 2 {
				d.cancelled.Add(1)
			}
		}(i, id)
	}
	wg.Wait()
}

// push creates runs at the configured rate while the churn plays, then
// waits for every run to end and checks.
func (d *driver) push(ctx context.Context) (*Report, error) {
	cfg := d.cfg
	if err := d.startWorkers(ctx); err != nil {
		return nil, err
	}
	idle, err := d.idleRates(ctx, 5*time.Second)
	if err != nil {
		return nil, err
	}
	before, err := d.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	pushStart := time.Now()
	ages := d.sampleQueueAge(ageInterval)
	d.logf("pushing %.1f runs/s for %s", cfg.Rate, cfg.Duration)
	churnDone := make(chan struct{})
	cctx, cstop := context.WithCancel(ctx)
	go func() { defer close(churnDone); d.churnPlan(cctx) }()

	var wg sync.WaitGroup
	sem := make(chan struct{}, 128)
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	next := time.Now()
	for n := 0; time.Since(pushStart) < cfg.Duration && ctx.Err() == nil; n++ {
		if w := time.Until(next); w > 0 {
			time.Sleep(w)
		}
		next = next.Add(interval)
		sem <- struct{}{}
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			defer func() { <-sem }()
			d.create(ctx, n)
		}(n)
	}
	wg.Wait()
	pushed := time.Since(pushStart)
	<-churnDone
	cstop()
	d.logf("pushed %d runs (%d refused); draining", d.createdCount(), d.rejected.Load())
	drained := d.waitDrained(ctx)
	samples := ages.finish()
	after, err := d.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	rep := d.report(ctx, before, after, idle)
	summarize(samples, ages.misses).judge(rep, cfg.churned())
	rep.PushSeconds = pushed.Seconds()
	rep.DrainSeconds = drained.Seconds()
	return rep, nil
}

// backlog queues cfg.Backlog runs with no worker running, then starts the
// workers and times the drain.
func (d *driver) backlog(ctx context.Context) (*Report, error) {
	cfg := d.cfg
	d.logf("queueing a backlog of %d runs", cfg.Backlog)
	var wg sync.WaitGroup
	jobs := make(chan int)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range jobs {
				d.create(ctx, n)
			}
		}()
	}
	t0 := time.Now()
	for n := 0; n < cfg.Backlog && ctx.Err() == nil; n++ {
		jobs <- n
	}
	close(jobs)
	wg.Wait()
	d.logf("queued %d runs in %.1fs (%.0f/s)", d.createdCount(), time.Since(t0).Seconds(), float64(d.createdCount())/time.Since(t0).Seconds())
	before, err := d.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	if err := d.startWorkers(ctx); err != nil {
		return nil, err
	}
	// The gauges are sampled while the backlog drains (from when every
	// worker, so every exporting candidate, is up).
	ages := d.sampleQueueAge(ageInterval)
	drained := d.waitDrained(ctx)
	samples := ages.finish()
	after, err := d.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	rep := d.report(ctx, before, after, idleRates{})
	summarize(samples, ages.misses).judge(rep, cfg.churned())
	rep.DrainSeconds = time.Since(t1).Seconds()
	_ = drained
	return rep, nil
}

// waitDrained waits until no run is queued or running, at most cfg.Drain.
func (d *driver) waitDrained(ctx context.Context) time.Duration {
	t0 := time.Now()
	deadline := t0.Add(d.cfg.Drain)
	last := time.Time{}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		out, err := d.psql("SELECT count(*) FROM runs WHERE status IN ('queued','running')")
		if err == nil && strings.TrimSpace(string(out)) == "0" {
			d.logf("drained in %.1fs", time.Since(t0).Seconds())
			return time.Since(t0)
		}
		if time.Since(last) > 10*time.Second {
			d.logf("waiting for %s runs to end", strings.TrimSpace(string(out)))
			last = time.Now()
		}
		time.Sleep(250 * time.Millisecond)
	}
	return time.Since(t0)
}

// churnPlan spreads the churn over the push phase: kills and SIGTERMs at
// random times in its first 70 %, Redis at 35 %, PostgreSQL at 55 %, the
// cancel burst at 80 %.
func (d *driver) churnPlan(ctx context.Context) {
	cfg := d.cfg
	dur := cfg.Duration
	type step struct {
		at time.Duration
		do func()
	}
	var steps []step
	for k := 0; k < cfg.Kills; k++ {
		steps = append(steps, step{time.Duration(float64(dur) * (0.05 + 0.65*rand.Float64())), func() {
			i := rand.IntN(len(d.names))
			p := d.worker(i)
			if p.exited() {
				return
			}
			p.kill9()
			<-p.done
			d.note("kill -9 %s", p.name)
			time.Sleep(time.Second)
			if err := d.startWorker(i); err != nil {
				d.note("restart %s: %v", p.name, err)
			}
		}})
	}
	if cfg.Terms > 0 {
		steps = append(steps, step{dur / 10, func() {
			for k := 0; k < cfg.Terms && ctx.Err() == nil; k++ {
				i := rand.IntN(len(d.names))
				p := d.worker(i)
				if p.exited() {
					continue
				}
				d.note("SIGTERM %s", p.name)
				p.stop(cfg.Grace + 30*time.Second)
				if err := d.startWorker(i); err != nil {
					d.note("restart %s: %v", p.name, err)
				}
			}
		}})
	}
	if cfg.RedisRestart {
		steps = append(steps, step{dur * 35 / 100, func() {
			d.note("Redis killed (every key lost)")
			d.rds.kill()
			time.Sleep(2 * time.Second)
			if err := d.rds.start(ctx); err != nil {
				d.note("Redis restart: %v", err)
				return
			}
			d.note("Redis back")
		}})
	}
	if cfg.PostgresRestart {
		steps = append(steps, step{dur * 55 / 100, func() {
			d.note("PostgreSQL stopped (immediate)")
			if err := d.pg.stop(); err != nil {
				d.note("PostgreSQL stop: %v", err)
			}
			time.Sleep(2 * time.Second)
			if err := d.pg.start(cfg.Workers*6 + cfg.APINodes*25 + 100); err != nil {
				d.note("PostgreSQL restart: %v", err)
				return
			}
			d.note("PostgreSQL back")
		}})
	}
	if cfg.Cancels > 0 {
		steps = append(steps, step{dur * 80 / 100, func() {
			d.cancelBurst(ctx, cfg.Cancels)
			d.note("cancel burst: %d of %d accepted", d.cancelled.Load(), cfg.Cancels)
		}})
	}
	var wg sync.WaitGroup
	t0 := time.Now()
	for _, s := range steps {
		wg.Add(1)
		go func(s step) {
			defer wg.Done()
			select {
			case <-time.After(time.Until(t0.Add(s.at))):
				s.do()
			case <-ctx.Done():
			}
		}(s)
	}
	wg.Wait()
}

func (d *driver) cleanup() {
	d.mu.Lock()
	procs := append([]*proc(nil), d.procs...)
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func(p *proc) { defer wg.Done(); p.stop(5 * time.Second) }(p)
	}
	wg.Wait()
	if d.rds != nil {
		d.rds.kill()
	}
	if d.pg != nil {
		_ = d.pg.stop()
	}
}
