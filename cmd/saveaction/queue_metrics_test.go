package main

import (
	"bufio"
	"fmt"
	"io"
	nethttp "net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scrapeGauges reads a worker's /metrics once and returns the values of
// the unlabelled series among names that it exports.
func scrapeGauges(port int, names ...string) (map[string]float64, error) {
	resp, err := nethttp.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		for _, name := range names {
			if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
				v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
				if err != nil {
					return nil, err
				}
				out[name] = v
			}
		}
	}
	return out, sc.Err()
}

// TestQueueMetricsExportedByOneNode: of two workers exactly one exports
// the fleet's queue gauges (the reconciler's lock holder without a
// cluster, the maintenance singleton in one); killed, the other takes
// over, and the exported depth is the stream's (runs left behind count).
func TestQueueMetricsExportedByOneNode(t *testing.T) {
	for _, provider := range []string{"none", "automanaged"} {
		t.Run(provider, func(t *testing.T) {
			var (
				f         *fleet
				workerEnv = func(int) []string { return nil }
			)
			if provider == "none" {
				f = newFleet(t, "LEASE_SECONDS=3")
			} else {
				ct := newClusterTest(t, provider, 2, "LEASE_SECONDS=3")
				f, workerEnv = ct.fleet, ct.workerEnv
			}
			names := []string{"qm-a", "qm-b"}
			ports := map[string]int{}
			procs := map[string]*proc{}
			for i, n := range names {
				ports[n] = freePort(t)
				env := append([]string{"WORKER_CONCURRENCY=1", fmt.Sprintf("METRICS_PORT=%d", ports[n]), "HOST=127.0.0.1"}, workerEnv(i)...)
				procs[n] = f.worker(n, env...)
			}
			exporters := func(among []string) (out []string, depth float64) {
				for _, n := range among {
					got, err := scrapeGauges(ports[n], "saveaction_queue_depth", "saveaction_queue_oldest_age_seconds")
					if err != nil {
						continue // not listening yet
					}
					v, ok := got["saveaction_queue_depth"]
					if _, okAge := got["saveaction_queue_oldest_age_seconds"]; ok != okAge {
						t.Errorf("%s exports depth=%v but oldest age=%v: the pair goes together", n, ok, okAge)
					}
					if ok {
						out = append(out, n)
						depth = v
					}
				}
				return out, depth
			}
			waitOne := func(among []string, within time.Duration) (string, time.Duration) {
				start := time.Now()
				for {
					got, _ := exporters(among)
					if len(got) == 1 {
						return got[0], time.Since(start)
					}
					if time.Since(start) > within {
						t.Fatalf("queue gauges exported by %v, want exactly one of %v\n%s", got, among, f.logs())
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
			holder, _ := waitOne(names, 60*time.Second)
			// Once settled, every scrape of both finds exactly one exporter.
			for range 10 {
				if got, _ := exporters(names); len(got) != 1 || got[0] != holder {
					t.Fatalf("queue gauges exported by %v, want only %s", got, holder)
				}
				time.Sleep(300 * time.Millisecond)
			}

			// Two slow runs (one per slot) and two waiting: the holder's
			// depth counts every entry of the stream.
			for range 4 {
				f.createRun(f.slowRecording(6), map[string]any{"timingMode": "realistic"})
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				if _, d := exporters([]string{holder}); d >= 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("holder %s never exported a depth of the queued runs", holder)
				}
				time.Sleep(200 * time.Millisecond)
			}

			if err := procs[holder].cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-procs[holder].done
			var other string
			for _, n := range names {
				if n != holder {
					other = n
				}
			}
			got, took := waitOne([]string{other}, 60*time.Second)
			_, depth := exporters([]string{got})
			t.Logf("%s: queue gauges moved from %s to %s %s after kill -9 (depth %v)", provider, holder, got, took.Round(100*time.Millisecond), depth)
		})
	}
}
