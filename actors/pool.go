package actors

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/saveaction/runner/browser"
)

// Defaults of the browser pool.
const (
	DefaultBrowserMaxRuns = 50
	DefaultBrowserMaxAge  = 30 * time.Minute
)

// Isolation modes of a run.
const (
	IsolationContext = "context" // a fresh incognito context in a pooled Chromium (default)
	IsolationBrowser = "browser" // a Chromium process of the run's own
)

// LaunchFunc starts one Chromium process.
type LaunchFunc func(ctx context.Context) (*browser.Browser, error)

// PoolConfig configures a Pool.
type PoolConfig struct {
	Launch LaunchFunc
	// MaxRuns recycles a process after this many runs (default DefaultBrowserMaxRuns).
	MaxRuns int
	// MaxAge recycles a process older than this (default DefaultBrowserMaxAge).
	MaxAge time.Duration
	// MaxRSSBytes recycles a process whose process group uses more resident
	// memory than this (0 = no ceiling).
	MaxRSSBytes int64
	// Spares is how many browser contexts (with their page, and proxy
	// under a network policy) the shared process keeps ready for the runs
	// to come; 0 or negative keeps none (see DefaultSpares).
	// A run that takes one only applies its emulation and loads its start
	// page.
	Spares  int
	Metrics *Metrics
}

// DefaultSpares is one: a run arriving at an idle worker takes a context
// made ahead and starts at once (POST → passed ≈ 190 ms against ≈ 400 ms
// for the 10-action recording of make bench on a quiet machine). Measured
// side by side on a quiet machine, 2 busy slots did not lose throughput
// with it (a spare is the next run's context made earlier, not an extra
// one); the loss seen before came from runs measured beside other load.
const DefaultSpares = 1

// Pool keeps a warm Chromium process that runs share through incognito
// contexts, replaces it when it dies or is due for recycling, and closes a
// retired process once its last run releases it.
type Pool struct {
	cfg    PoolConfig
	mu     sync.Mutex
	cur    *pooled
	all    map[*pooled]struct{}
	closed bool
}

type pooled struct {
	b       *browser.Browser
	born    time.Time
	runs    int
	active  int
	retired bool
	// rssAt is when the process group's RSS was last read (zero: never).
	rssAt time.Time
	// spares is what the process was last told to keep (KeepSpares).
	spares int
}

// rssEvery spaces the RSS checks of a shared browser: reading it walks
// /proc (every process of the host), which costs milliseconds on a busy
// host, too much for every run's start.
const rssEvery = 5 * time.Second

// NewPool returns an empty pool; processes start on first use.
func NewPool(cfg PoolConfig) *Pool {
	if cfg.MaxRuns <= 0 {
		cfg.MaxRuns = DefaultBrowserMaxRuns
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultBrowserMaxAge
	}
	return &Pool{cfg: cfg, all: map[*pooled]struct{}{}}
}

// Handle is one run's use of a browser process.
type Handle struct {
	pool *Pool
	p    *pooled
	once sync.Once
}

// Browser is the process the run may open its context in.
func (h *Handle) Browser() *browser.Browser { return h.p.b }

// Release gives the browser back. crashed retires the process: it is closed
// as soon as no other run uses it, and the next run gets a fresh one.
func (h *Handle) Release(crashed bool) {
	h.once.Do(func() { h.pool.release(h.p, crashed) })
}

// Acquire returns a browser for one run: the warm shared process for
// IsolationContext, a new process of its own for IsolationBrowser.
func (p *Pool) Acquire(ctx context.Context, isolation string) (*Handle, error) {
	if isolation == IsolationBrowser {
		b, err := p.launch(ctx)
		if err != nil {
			return nil, err
		}
		pp := &pooled{b: b, born: time.Now(), runs: 1, active: 1, retired: true}
		p.mu.Lock()
		p.all[pp] = struct{}{}
		p.mu.Unlock()
		return &Handle{pool: p, p: pp}, nil
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("browser pool closed")
	}
	if c := p.cur; c != nil && p.due(c) {
		p.retireLocked(c)
	}
	if p.cur != nil {
		p.cur.runs++
		p.cur.active++
		p.sparesLocked(p.cur)
		h := &Handle{pool: p, p: p.cur}
		p.mu.Unlock()
		return h, nil
	}
	p.mu.Unlock()

	// Launch outside the lock; if another run launched meanwhile, keep both
	// working and make the newer one current.
	b, err := p.launch(ctx)
	if err != nil {
		return nil, err
	}
	pp := &pooled{b: b, born: time.Now(), runs: 1, active: 1}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = b.Close()
		return nil, fmt.Errorf("browser pool closed")
	}
	if p.cur != nil {
		p.retireLocked(p.cur)
	}
	p.cur = pp
	p.all[pp] = struct{}{}
	p.sparesLocked(pp)
	return &Handle{pool: p, p: pp}, nil
}

// sparesLocked tells the current shared process how many spare contexts
// to keep: Spares, or as many runs as it has now if more.
func (p *Pool) sparesLocked(c *pooled) {
	want := p.cfg.Spares
	if want <= 0 {
		return
	}
	if want != c.spares {
		c.spares = want
		c.b.KeepSpares(want)
	}
}

// due reports whether a shared process should be retired before its next run.
func (p *Pool) due(c *pooled) bool {
	if !c.b.Alive() || c.runs >= p.cfg.MaxRuns || time.Since(c.born) > p.cfg.MaxAge {
		return true
	}
	if p.cfg.MaxRSSBytes <= 0 || (!c.rssAt.IsZero() && time.Since(c.rssAt) < rssEvery) {
		return false
	}
	c.rssAt = time.Now()
	return GroupRSS(c.b.PID()) > p.cfg.MaxRSSBytes
}

func (p *Pool) launch(ctx context.Context) (*browser.Browser, error) {
	b, err := p.cfg.Launch(ctx)
	if err != nil {
		return nil, fmt.Errorf("start Chromium: %w", err)
	}
	if p.cfg.Metrics != nil {
		p.cfg.Metrics.BrowserLaunches.Inc()
	}
	return b, nil
}

func (p *Pool) release(pp *pooled, crashed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp.active--
	if crashed || !pp.b.Alive() {
		if p.cfg.Metrics != nil && crashed {
			p.cfg.Metrics.BrowserCrashes.Inc()
		}
		p.retireLocked(pp)
	}
	if pp.retired && pp.active <= 0 {
		p.closeLocked(pp)
	}
}

func (p *Pool) retireLocked(pp *pooled) {
	pp.retired = true
	if p.cur == pp {
		p.cur = nil
	}
	if pp.spares > 0 {
		// No new run starts in it: its spares would go unused.
		pp.spares = 0
		pp.b.KeepSpares(0)
	}
	if pp.active <= 0 {
		p.closeLocked(pp)
	}
}

func (p *Pool) closeLocked(pp *pooled) {
	if _, ok := p.all[pp]; !ok {
		return
	}
	delete(p.all, pp)
	_ = pp.b.Close()
}

// PIDs lists the Chromium processes the pool holds (for tests and metrics).
func (p *Pool) PIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]int, 0, len(p.all))
	for pp := range p.all {
		out = append(out, pp.b.PID())
	}
	return out
}

// Close kills every process of the pool, in use or not.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for pp := range p.all {
		p.closeLocked(pp)
	}
	p.cur = nil
}

// GroupRSS sums the resident memory of every process in process group pgid
// (a Chromium browser and its renderers, launched as their own group).
func GroupRSS(pgid int) int64 {
	var total int64
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		// Fields after the name: state, ppid, pgrp, ..., rss (24th field overall, index 21 here) in pages.
		if len(f) < 22 {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g != pgid && pid != pgid {
			continue
		}
		pages, _ := strconv.ParseInt(f[21], 10, 64)
		total += pages * int64(os.Getpagesize())
	}
	return total
}
