package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaultsAndOverrides(t *testing.T) {
	for k := range configDefaults {
		t.Setenv(k, configDefaults[k]) // a clean, known environment
	}
	t.Setenv("WORKER_CONCURRENCY", "5")
	cfg, rest, err := loadConfig("test", []string{"--PORT=4000", "extra"}, map[string]string{"HOST": "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 4000 || cfg.WorkerConcurrency != 5 || cfg.Host != "0.0.0.0" || cfg.Lease != 30*time.Second {
		t.Fatalf("cfg = %+v", cfg)
	}
	if len(rest) != 1 || rest[0] != "extra" {
		t.Fatalf("rest = %v", rest)
	}
	if cfg.WorkerName == "" {
		t.Fatalf("default worker name %q", cfg.WorkerName)
	}
}

func TestBadConfigurationNamesTheVariable(t *testing.T) {
	cases := map[string]string{
		"WORKER_CONCURRENCY":      "11",
		"PORT":                    "http",
		"LOG_LEVEL":               "loud",
		"LOG_FORMAT":              "xml",
		"DATABASE_URL":            "mysql://x",
		"REDIS_URL":               "127.0.0.1:6379",
		"LEASE_SECONDS":           "1",
		"CLUSTER_PROVIDER":        "zookeeper",
		"WORKER_REPLAYER":         "firefox",
		"SIMULATION_FAILURE_RATE": "1.5",
		"SIMULATION_CRASH_RATE":   "-0.1",
	}
	for key, val := range cases {
		t.Run(key, func(t *testing.T) {
			t.Setenv(key, val)
			_, _, err := loadConfig("test", nil, nil)
			if err == nil || !strings.Contains(err.Error(), key) {
				t.Fatalf("%s=%q: error %v does not name the variable", key, val, err)
			}
		})
	}
}

func TestDispatchUsageAndUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := dispatch(context.Background(), nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "Usage") {
		t.Fatalf("no command: code %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := dispatch(context.Background(), []string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: code %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	t.Setenv("WORKER_CONCURRENCY", "0")
	if code := dispatch(context.Background(), []string{"worker"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "WORKER_CONCURRENCY") {
		t.Fatalf("bad config: code %d, stderr %q", code, errOut.String())
	}
}

func TestDefaultWorkerNameIsUniquePerNode(t *testing.T) {
	t.Setenv("WORKER_NAME", "")
	host, _ := os.Hostname()
	seen := map[string]bool{}
	for range 3 {
		cfg, _, err := loadConfig("test", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		name := cfg.WorkerName
		if seen[name] {
			t.Fatalf("default worker name %q given twice in one process", name)
		}
		seen[name] = true
		if !strings.Contains(name, strconv.Itoa(os.Getpid())) || (host != "" && !strings.Contains(name, sanitizeName(host))) {
			t.Fatalf("default worker name %q names neither the host %q nor the pid %d", name, host, os.Getpid())
		}
	}
	t.Setenv("WORKER_NAME", "ci-7")
	if cfg, _, err := loadConfig("test", nil, nil); err != nil || cfg.WorkerName != "ci-7" {
		t.Fatalf("WORKER_NAME=ci-7: %v %v", cfg, err)
	}
}

func TestMetricsPortExplicitOnlyWhenSet(t *testing.T) {
	cases := []struct {
		name     string
		env      string // "" = unset
		args     []string
		explicit bool
		port     int
	}{
		{"default", "", nil, false, 9464},
		{"environment", "9464", nil, true, 9464},
		{"flag", "", []string{"--METRICS_PORT=9500"}, true, 9500},
		{"off", "0", nil, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("METRICS_PORT", "")
			if c.env == "" {
				os.Unsetenv("METRICS_PORT") // restored by t.Setenv's cleanup
			} else {
				t.Setenv("METRICS_PORT", c.env)
			}
			cfg, _, err := loadConfig("test", c.args, nil)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MetricsPort != c.port || cfg.MetricsPortExplicit != c.explicit {
				t.Fatalf("port %d explicit %v, want %d %v", cfg.MetricsPort, cfg.MetricsPortExplicit, c.port, c.explicit)
			}
		})
	}
}

func TestConfigNamesListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	if code := dispatch(context.Background(), []string{"config", "names"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	got := strings.Fields(out.String())
	if len(got) != len(configDefaults) {
		t.Fatalf("%d names printed, %d variables known", len(got), len(configDefaults))
	}
	for _, n := range got {
		if _, ok := configDefaults[n]; !ok {
			t.Errorf("%s printed but not read", n)
		}
	}
	if code := dispatch(context.Background(), []string{"config", "bogus"}, io.Discard, io.Discard); code == 0 {
		t.Error("config bogus: exit 0")
	}
}
