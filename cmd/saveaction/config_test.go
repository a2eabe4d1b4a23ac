package main

import (
	"bytes"
	"context"
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
	if !strings.HasPrefix(cfg.WorkerName, "worker-") {
		t.Fatalf("default worker name %q", cfg.WorkerName)
	}
}

func TestBadConfigurationNamesTheVariable(t *testing.T) {
	cases := map[string]string{
		"WORKER_CONCURRENCY": "11",
		"PORT":               "http",
		"LOG_LEVEL":          "loud",
		"LOG_FORMAT":         "xml",
		"DATABASE_URL":       "mysql://x",
		"REDIS_URL":          "127.0.0.1:6379",
		"LEASE_SECONDS":      "1",
		"CLUSTER_PROVIDER":   "zookeeper",
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
