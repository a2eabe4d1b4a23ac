package main

import (
	"fmt"
	"io"
	nethttp "net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWorkerMetricsScrapeFigures measures a real worker's /metrics with 10
// runs active: bytes and time per scrape, and the series it exports (all,
// and ours without the Go runtime's). It asserts bounds that hold however
// slow the machine (bounded labels), and logs the figures.
func TestWorkerMetricsScrapeFigures(t *testing.T) {
	f := newFleet(t, "LEASE_SECONDS=10")
	port := freePort(t)
	f.worker("fig-w", "WORKER_CONCURRENCY=10", fmt.Sprintf("METRICS_PORT=%d", port), "HOST=127.0.0.1")
	scrape := func() (string, time.Duration, error) {
		start := time.Now()
		resp, err := nethttp.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			return "", 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), time.Since(start), err
	}
	// Idle first, for comparison: the same scrapes with no run.
	var idle []time.Duration
	for deadline := time.Now().Add(30 * time.Second); len(idle) < 30; time.Sleep(50 * time.Millisecond) {
		if _, d, err := scrape(); err == nil {
			idle = append(idle, d)
		} else if time.Now().After(deadline) {
			t.Fatalf("worker metrics never answered: %v", err)
		}
	}
	slices.Sort(idle)
	t.Logf("idle worker /metrics: scrape p50 %s p95 %s", idle[len(idle)/2].Round(10*time.Microsecond), idle[len(idle)*95/100].Round(10*time.Microsecond))
	for range 10 {
		f.createRun(f.slowRecording(120), map[string]any{"timingMode": "realistic"})
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		body, _, err := scrape()
		if err == nil && strings.Contains(body, "\nsaveaction_runs_active 10\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 runs never active at once on the worker:\n%s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var (
		sizes []int
		times []time.Duration
		body  string
	)
	// Only scrapes that saw the 10 runs active count.
	for i := 0; i < 60 && len(sizes) < 30; i++ {
		b, d, err := scrape()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b, "\nsaveaction_runs_active 10\n") {
			continue
		}
		body = b
		sizes = append(sizes, len(b))
		times = append(times, d)
		time.Sleep(50 * time.Millisecond)
	}
	if len(sizes) < 10 {
		t.Fatalf("only %d scrapes saw 10 runs active; make the runs longer", len(sizes))
	}
	all, ours := 0, 0
	families := map[string]int{}
	for _, l := range strings.Split(body, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		all++
		name := l[:strings.IndexAny(l, "{ ")]
		if !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
			ours++
			families[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")]++
		}
	}
	slices.Sort(sizes)
	slices.Sort(times)
	t.Logf("worker /metrics with 10 runs active: %d–%d bytes, scrape p50 %s p95 %s max %s (%d scrapes, loopback)",
		sizes[0], sizes[len(sizes)-1], times[len(times)/2].Round(10*time.Microsecond),
		times[len(times)*95/100].Round(10*time.Microsecond), times[len(times)-1].Round(10*time.Microsecond), len(times))
	t.Logf("series per worker: %d in all, %d saveaction_* (without go_/process_); by family: %v", all, ours, families)
	// Bounded labels: no run or user id in a label, so the count does not
	// grow with runs. 10 runs active must not bring it anywhere near 1000.
	if ours > 1000 || strings.Contains(body, "runId") || strings.Contains(body, "run_id") {
		t.Errorf("%d series of ours with 10 runs active: unbounded labels?", ours)
	}
}
