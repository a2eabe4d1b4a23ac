package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/saveaction/runner/examples"
)

// TestDashboardPanelsAllHaveData runs a real Prometheus against a real API
// node and worker, makes a passing, a failing and a cancelled run, and asks
// Prometheus every query of every panel of the Grafana dashboard: each must
// return data, so the dashboard cannot drift from the metrics.
func TestDashboardPanelsAllHaveData(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus is missing in CI: .ci/run installs Debian's prometheus package")
		}
		t.Skip("prometheus not installed (apt-get install prometheus)")
	}
	raw, err := os.ReadFile("../../deploy/grafana/dashboards/saveaction-fleet.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}

	f := newFleet(t, "LEASE_SECONDS=3")
	metricsPort := freePort(t)
	f.worker("worker-a", "WORKER_CONCURRENCY=2", fmt.Sprintf("METRICS_PORT=%d", metricsPort), "HOST=127.0.0.1")

	dir := t.TempDir()
	promPort := freePort(t)
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: saveaction-api
    static_configs: [{targets: ["%s"]}]
  - job_name: saveaction-worker
    static_configs: [{targets: ["127.0.0.1:%d"]}]
`, f.api.base[len("http://"):], metricsPort)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort))
	var promLog bytes.Buffer
	prom.Stdout, prom.Stderr = &promLog, &promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = prom.Process.Kill()
		_ = prom.Wait()
		if t.Failed() {
			t.Logf("prometheus:\n%s", promLog.String())
		}
	})

	// A passing run, a failing run, a cancelled run.
	passed := f.createRun(f.slowRecording(2), map[string]any{"timingMode": "instant"})
	failing := bytes.ReplaceAll(examples.FailingRecording(), []byte("http://127.0.0.1:3002"), []byte(f.site.URL))
	failed := f.createRun(failing, map[string]any{"timingMode": "instant", "timeout": 1000})
	slow := f.createRun(f.slowRecording(20), map[string]any{"timingMode": "realistic"})
	f.waitFor(slow, 60*time.Second, "running", func(r runView) bool { return r.Status == "running" })
	f.api.call("POST", "/api/v1/runs/"+slow+"/cancel", nil, 200, nil)
	for id, want := range map[string]string{passed: "passed", failed: "failed", slow: "cancelled"} {
		if r := f.waitFor(id, 60*time.Second, "finished", terminal); r.Status != want {
			t.Fatalf("run %s = %s, want %s", id, r.Status, want)
		}
	}

	query := func(expr string) (int, error) {
		resp, err := nethttp.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/query?query=%s", promPort, url.QueryEscape(expr)))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var out struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return 0, err
		}
		if out.Status != "success" {
			return 0, fmt.Errorf("%s", out.Error)
		}
		return len(out.Data.Result), nil
	}
	// Rates need two scrapes after the runs; give Prometheus a few.
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for {
				n, err := query(target.Expr)
				if err != nil {
					t.Fatalf("panel %q: query %s: %v", p.Title, target.Expr, err)
				}
				if n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("panel %q: no data for %s", p.Title, target.Expr)
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
		}
	}
	if len(dash.Panels) < 10 {
		t.Fatalf("dashboard has %d panels", len(dash.Panels))
	}
}
