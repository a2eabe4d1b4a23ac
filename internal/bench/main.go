// Command bench measures the service where users feel it and writes
// BENCHMARKS.md (make bench):
//
//   - api: `saveaction api` (auth, rate limit in Redis, request log on) and
//     a bare floor server (internal/bench/floor: Fiber + pgxpool, same
//     queries) side by side, wrk at 16 and 64 connections on GET /runs/:id,
//     GET /runs/:id/actions, GET /runs?limit=20 and POST /runs over a
//     database of 100k runs, interleaved and repeated; ratios of medians.
//   - run: POST → passed of a 10-action instant recording of a static page on
//     `saveaction dev` with 1 slot, with the time outside the actions split.
//   - throughput: N runs queued at once on 2 slots, runs per minute.
//
// -before names a second binary (e.g. main's build) measured in the same
// run, interleaved, so before/after are compared under the same load.
// Everything listens on 127.0.0.1, uses a database and Redis prefix of its
// own, and is removed at the end.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

type config struct {
	bin, before   string
	floorBin      string
	out           string
	dur           time.Duration
	reps          int
	runs          int
	conns         []int
	parts         map[string]bool
	endpoints     map[string]bool // nil: every API measure
	starts        int
	startGap      time.Duration
	queued        int
	pg, redisAddr string
	tmp           string
	pprofDir      string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var c config
	var parts, conns, endpoints string
	flag.StringVar(&c.bin, "bin", "", "saveaction binary to measure (default: built from this tree)")
	flag.StringVar(&c.before, "before", "", "a second saveaction binary measured side by side as \"before\"")
	flag.StringVar(&c.out, "out", "BENCHMARKS.md", "report to write")
	flag.DurationVar(&c.dur, "duration", 8*time.Second, "length of one wrk measure")
	flag.IntVar(&c.reps, "reps", 3, "repetitions of every measure (median reported)")
	flag.IntVar(&c.runs, "runs", 100_000, "runs seeded for the API measures")
	flag.StringVar(&conns, "conns", "16,64", "wrk connection counts")
	flag.StringVar(&parts, "parts", "api,run,throughput", "measures to take")
	flag.StringVar(&endpoints, "endpoints", "", "API measures to take, of "+strings.Join(endpointKeys, ",")+" (default: all)")
	flag.IntVar(&c.starts, "starts", 15, "runs timed one at a time for the start-up measure (per repetition)")
	flag.DurationVar(&c.startGap, "start-gap", time.Second, "pause after each timed run of the start-up measure, so the next arrives at an idle worker (0: back to back)")
	flag.IntVar(&c.queued, "queued", 24, "runs queued at once for the throughput measure")
	flag.StringVar(&c.pg, "pg", "postgres://root@127.0.0.1:5432/%s?sslmode=disable", "PostgreSQL URL pattern (%s = database)")
	flag.StringVar(&c.redisAddr, "redis", "127.0.0.1:6379", "Redis address")
	flag.StringVar(&c.pprofDir, "pprof", "", "directory to write CPU profiles of the API under load into (api part)")
	flag.Parse()
	c.parts = map[string]bool{}
	for _, p := range strings.Split(parts, ",") {
		c.parts[strings.TrimSpace(p)] = true
	}
	if endpoints != "" {
		c.endpoints = map[string]bool{}
		for _, e := range strings.Split(endpoints, ",") {
			e = strings.TrimSpace(e)
			if !slices.Contains(endpointKeys, e) {
				return fmt.Errorf("-endpoints: %q is not one of %s", e, strings.Join(endpointKeys, ","))
			}
			c.endpoints[e] = true
		}
	}
	for _, s := range strings.Split(conns, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil || n < 1 {
			return fmt.Errorf("-conns: %q", s)
		}
		c.conns = append(c.conns, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp, err := os.MkdirTemp("", "sa-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	c.tmp = tmp
	if c.bin == "" {
		c.bin = filepath.Join(tmp, "saveaction")
		if err := goBuild(ctx, c.bin, "./cmd/saveaction"); err != nil {
			return err
		}
	}
	c.floorBin = filepath.Join(tmp, "floor")
	if err := goBuild(ctx, c.floorBin, "./internal/bench/floor"); err != nil {
		return err
	}

	rep := &report{started: time.Now().UTC(), cfg: &c}
	rep.machine = machine()
	if c.parts["api"] {
		if rep.api, err = benchAPI(ctx, &c); err != nil {
			return fmt.Errorf("api: %w", err)
		}
	}
	if c.parts["run"] {
		if rep.start, err = benchStart(ctx, &c); err != nil {
			return fmt.Errorf("run: %w", err)
		}
	}
	if c.parts["throughput"] {
		if rep.tput, err = benchThroughput(ctx, &c); err != nil {
			return fmt.Errorf("throughput: %w", err)
		}
	}
	rep.finished = time.Now().UTC()
	text := rep.markdown()
	fmt.Print(text)
	// Hand-written notes below the marker survive a new run.
	if old, err := os.ReadFile(c.out); err == nil {
		if i := strings.Index(string(old), notesMarker); i >= 0 {
			text += "\n" + string(old[i:])
		}
	}
	return os.WriteFile(c.out, []byte(text), 0o644)
}

// notesMarker starts the hand-written part of the report.
const notesMarker = "<!-- notes: kept by make bench -->"

func goBuild(ctx context.Context, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// loadavg is the 1-minute load average now.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func machine() string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	out, _ := exec.Command("nproc").Output()
	return fmt.Sprintf("%s CPUs (nproc), %s", strings.TrimSpace(string(out)), model)
}
