package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// devNode is `saveaction dev` (API and worker in one process) on a database
// and Redis prefix of its own.
type devNode struct {
	p      *proc
	db     *database
	prefix string
	redis  string
	cl     *client
}

var reToken = regexp.MustCompile(`Token: (sa_live_[0-9a-f]+)`)

func startDev(ctx context.Context, c *config, name, bin string, slots int) (*devNode, error) {
	suffix := randomHex(4)
	db, err := newDatabase(ctx, c.pg, "sa_bench_"+name+"_"+suffix)
	if err != nil {
		return nil, err
	}
	n := &devNode{db: db, prefix: "sa_bench_" + name + "_" + suffix + ":", redis: c.redisAddr}
	port, err := freePort()
	if err != nil {
		n.close()
		return nil, err
	}
	dir := filepath.Join(c.tmp, name+"-"+suffix)
	env := map[string]string{
		"DATABASE_URL": db.dsn, "REDIS_URL": "redis://" + c.redisAddr + "/0", "REDIS_PREFIX": n.prefix,
		"PORT": strconv.Itoa(port), "DEMO_PORT": "0", "WORKER_CONCURRENCY": strconv.Itoa(slots),
		"WORKER_NAME": "bench-" + suffix, "LOG_LEVEL": "info",
		"ARTIFACT_STORE": filepath.Join(dir, "artifacts"), "VIDEO_STORAGE_PATH": filepath.Join(dir, "videos"),
		"SCREENSHOT_STORAGE_PATH": filepath.Join(dir, "screenshots"), "FILES_PATH": filepath.Join(dir, "files"),
		"RATE_LIMIT_PER_MINUTE": "100000",
	}
	if n.p, err = start(name, bin, []string{"dev"}, env, ""); err != nil {
		n.close()
		return nil, err
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		if m := reToken.FindStringSubmatch(n.p.out.String()); m != nil {
			n.cl = newClient(fmt.Sprintf("http://127.0.0.1:%d", port), m[1])
			break
		}
		if n.p.exited() || time.Now().After(deadline) {
			out := n.p.out.String()
			n.close()
			return nil, fmt.Errorf("%s did not start:\n%s", name, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return n, nil
}

func (n *devNode) close() {
	if n.p != nil {
		n.p.stop()
	}
	n.db.drop()
	dropRedis(n.redis, n.prefix)
}

func (n *devNode) upload(ctx context.Context, rec []byte) (string, error) {
	var r struct {
		ID string `json:"id"`
	}
	err := n.cl.call(ctx, "POST", "/api/v1/recordings", rec, 201, &r)
	return r.ID, err
}

var instant = map[string]any{"timingMode": "instant", "timeout": 10000}

func (n *devNode) createRun(ctx context.Context, recID string) (string, error) {
	var r struct {
		ID string `json:"id"`
	}
	err := n.cl.call(ctx, "POST", "/api/v1/runs", map[string]any{"recordingId": recID, "options": instant}, 201, &r)
	return r.ID, err
}

// waitFinished follows the run's event stream until run.finished.
func (n *devNode) waitFinished(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", n.cl.base+"/api/v1/runs/"+id+"/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+n.cl.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("events of run %s: %d", id, res.StatusCode)
	}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if sc.Text() == "event: run.finished" {
			return nil
		}
	}
	return fmt.Errorf("events of run %s ended without run.finished: %v", id, sc.Err())
}

type runView struct {
	Status      string  `json:"status"`
	CreatedAt   string  `json:"createdAt"`
	StartedAt   *string `json:"startedAt"`
	CompletedAt *string `json:"completedAt"`
	Error       *string `json:"errorMessage"`
}

type actionView struct {
	Status      string  `json:"status"`
	StartedAt   *string `json:"startedAt"`
	CompletedAt *string `json:"completedAt"`
}

func parseTime(s *string) time.Time {
	if s == nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, *s)
	return t
}

// startSample is one run timed from POST to run.finished, split by the
// timestamps the run and its rows carry.
type startSample struct {
	total   time.Duration // POST sent → run.finished received
	queue   time.Duration // created → started (dispatch, claim)
	setup   time.Duration // started → first action started (context, page, start page)
	actions time.Duration // first action started → last action completed
	finish  time.Duration // last action completed → run completed (final write)
	notify  time.Duration // run completed → run.finished seen (event, ack)
	post    time.Duration // POST sent → created (the API's insert)
}

func (s startSample) outside() time.Duration { return s.total - s.actions }

// timeRun creates a run, waits for it and splits its time.
func (n *devNode) timeRun(ctx context.Context, recID string) (startSample, error) {
	t0 := time.Now()
	id, err := n.createRun(ctx, recID)
	if err != nil {
		return startSample{}, err
	}
	if err := n.waitFinished(ctx, id); err != nil {
		return startSample{}, err
	}
	seen := time.Now()
	var run runView
	if err := n.cl.call(ctx, "GET", "/api/v1/runs/"+id, nil, 200, &run); err != nil {
		return startSample{}, err
	}
	if run.Status != "passed" {
		return startSample{}, fmt.Errorf("run %s %s: %v", id, run.Status, deref(run.Error))
	}
	var acts []actionView
	if err := n.cl.call(ctx, "GET", "/api/v1/runs/"+id+"/actions", nil, 200, &acts); err != nil {
		return startSample{}, err
	}
	if len(acts) == 0 {
		return startSample{}, errNoRuns
	}
	for _, a := range acts {
		if a.Status != "success" && a.Status != "passed" {
			return startSample{}, fmt.Errorf("run %s passed with an action %s", id, a.Status)
		}
	}
	created, started, completed := parseTime(&run.CreatedAt), parseTime(run.StartedAt), parseTime(run.CompletedAt)
	first, last := parseTime(acts[0].StartedAt), parseTime(acts[len(acts)-1].CompletedAt)
	return startSample{
		total: seen.Sub(t0), post: created.Sub(t0), queue: started.Sub(created), setup: first.Sub(started),
		actions: last.Sub(first), finish: completed.Sub(last), notify: seen.Sub(completed),
	}, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// startResult holds the start-up samples per binary.
type startResult struct {
	samples map[string][]startSample // by target
	targets []string
	load    []string
}

func binaries(c *config) [][2]string {
	bins := [][2]string{{"ours", c.bin}}
	if c.before != "" {
		bins = append(bins, [2]string{"before", c.before})
	}
	return bins
}

// benchStart times runs one at a time on a 1-slot dev node (after two
// warm-up runs, so Chromium's first launch is not counted), alternating
// binaries in rounds so both see the same load.
func benchStart(ctx context.Context, c *config) (*startResult, error) {
	page, closePage, err := servePage()
	if err != nil {
		return nil, err
	}
	defer closePage()
	res := &startResult{samples: map[string][]startSample{}}
	for rep := 0; rep < c.reps; rep++ {
		for _, b := range binaries(c) {
			if rep == 0 {
				res.targets = append(res.targets, b[0])
			}
			if err := func() error {
				n, err := startDev(ctx, c, "start", b[1], 1)
				if err != nil {
					return err
				}
				defer n.close()
				recID, err := n.upload(ctx, tenActions(page, "rec_bench_start"))
				if err != nil {
					return err
				}
				for i := 0; i < 2; i++ {
					if _, err := n.timeRun(ctx, recID); err != nil {
						return err
					}
				}
				for i := 0; i < c.starts; i++ {
					if c.startGap > 0 {
						select {
						case <-time.After(c.startGap):
						case <-ctx.Done():
							return ctx.Err()
						}
					}
					s, err := n.timeRun(ctx, recID)
					if err != nil {
						return err
					}
					res.samples[b[0]] = append(res.samples[b[0]], s)
				}
				ss := res.samples[b[0]]
				fmt.Fprintf(os.Stderr, "start-up %-7s rep %d: median total %s outside %s (load %s)\n", b[0], rep,
					medianOf(ss, func(s startSample) time.Duration { return s.total }),
					medianOf(ss, startSample.outside), loadavg())
				return nil
			}(); err != nil {
				return nil, err
			}
			res.load = append(res.load, loadavg())
		}
	}
	return res, nil
}

func medianOf(ss []startSample, f func(startSample) time.Duration) time.Duration {
	ds := make([]time.Duration, len(ss))
	for i, s := range ss {
		ds[i] = f(s)
	}
	slices.Sort(ds)
	if len(ds) == 0 {
		return 0
	}
	return ds[len(ds)/2]
}

// tputResult is runs per minute per repetition and binary.
type tputResult struct {
	perMin  map[string][]float64
	targets []string
	queued  int
	load    []string
}

// benchThroughput queues c.queued runs at once on a 2-slot dev node (warm:
// two runs first) and measures from the first POST to the last run.finished.
func benchThroughput(ctx context.Context, c *config) (*tputResult, error) {
	page, closePage, err := servePage()
	if err != nil {
		return nil, err
	}
	defer closePage()
	res := &tputResult{perMin: map[string][]float64{}, queued: c.queued}
	for rep := 0; rep < c.reps; rep++ {
		for _, b := range binaries(c) {
			if rep == 0 {
				res.targets = append(res.targets, b[0])
			}
			if err := func() error {
				n, err := startDev(ctx, c, "tput", b[1], 2)
				if err != nil {
					return err
				}
				defer n.close()
				recID, err := n.upload(ctx, tenActions(page, "rec_bench_tput"))
				if err != nil {
					return err
				}
				for i := 0; i < 2; i++ {
					if _, err := n.timeRun(ctx, recID); err != nil {
						return err
					}
				}
				t0 := time.Now()
				ids := make([]string, c.queued)
				for i := range ids {
					if ids[i], err = n.createRun(ctx, recID); err != nil {
						return err
					}
				}
				for _, id := range ids {
					if err := n.waitFinished(ctx, id); err != nil {
						return err
					}
				}
				el := time.Since(t0)
				for _, id := range ids {
					var run runView
					if err := n.cl.call(ctx, "GET", "/api/v1/runs/"+id, nil, 200, &run); err != nil {
						return err
					}
					if run.Status != "passed" {
						return fmt.Errorf("run %s %s: %s", id, run.Status, deref(run.Error))
					}
				}
				pm := float64(c.queued) / el.Minutes()
				res.perMin[b[0]] = append(res.perMin[b[0]], pm)
				fmt.Fprintf(os.Stderr, "throughput %-7s rep %d: %d runs in %s = %.0f runs/min (load %s)\n",
					b[0], rep, c.queued, el.Round(time.Millisecond), pm, loadavg())
				return nil
			}(); err != nil {
				return nil, err
			}
			res.load = append(res.load, loadavg())
		}
	}
	return res, nil
}
