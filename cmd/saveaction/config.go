package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/saveaction/runner/actors"
	"github.com/saveaction/runner/artifacts"
	"github.com/saveaction/runner/cluster"
	"github.com/saveaction/runner/netguard"
)

// Config is the service configuration, read from the environment; every
// variable has a flag of the same name that overrides it.
type Config struct {
	DatabaseURL          string        // DATABASE_URL
	RedisURL             string        // REDIS_URL
	RedisPrefix          string        // REDIS_PREFIX: key prefix of every Redis key (default "sa:")
	Port                 int           // PORT (3001)
	Host                 string        // HOST ("0.0.0.0"; dev: 127.0.0.1)
	WorkerConcurrency    int           // WORKER_CONCURRENCY (3, 1-10)
	WorkerName           string        // WORKER_NAME (<host>-<pid>-<random>: unique per node)
	LogLevel             slog.Level    // LOG_LEVEL (info)
	LogFormat            string        // LOG_FORMAT (json|text; text on a terminal)
	VideoStoragePath     string        // VIDEO_STORAGE_PATH (./storage/videos)
	ScreenshotStorage    string        // SCREENSHOT_STORAGE_PATH (./storage/screenshots)
	FilesPath            string        // FILES_PATH: folder of file-input uploads (./storage/files)
	ChromeBin            string        // CHROME_BIN (found on PATH otherwise)
	Lease                time.Duration // LEASE_SECONDS (30)
	ShutdownGrace        time.Duration // SHUTDOWN_GRACE_SECONDS (30)
	RateLimitPerMinute   int           // RATE_LIMIT_PER_MINUTE (600)
	MetricsPort          int           // METRICS_PORT (worker; 9464, 0 = off)
	MetricsPortExplicit  bool          // METRICS_PORT was set: a taken port stops start-up instead of falling back
	ClusterProvider      string        // CLUSTER_PROVIDER (none|automanaged|etcd|k8s; none: the node runs alone)
	ClusterHosts         []string      // CLUSTER_HOSTS (automanaged: every node's host:port, comma list)
	ActorHost            string        // ACTOR_HOST (127.0.0.1)
	ActorPort            int           // ACTOR_PORT (0 = pick a free port)
	ActorAdvertised      string        // ACTOR_ADVERTISED_HOST (host:port other nodes use; "" = as listened)
	DemoPort             int           // DEMO_PORT (dev only: the examples/ demo site, 3002)
	BrowserMaxRuns       int           // BROWSER_MAX_RUNS (50)
	BrowserSpares        int           // BROWSER_SPARE_SESSIONS (1, 0-10): browser contexts made ahead of runs
	BrowserMaxAgeMinutes int           // BROWSER_MAX_AGE_MINUTES (30)
	BrowserMaxRSSMB      int           // BROWSER_MAX_RSS_MB (1024; 0 = no ceiling)

	// RUN_BLOCKED_NETWORKS: CIDRs, addresses and host:port endpoints no run
	// may reach (default the link-local ranges, which hold cloud metadata);
	// the worker's own database, Redis, actor and metrics endpoints are
	// added to it at start (see runPolicy).
	RunBlockedNetworks  []netip.Prefix
	RunBlockedEndpoints []netip.AddrPort
	RunAllowedHosts     []string // RUN_ALLOWED_HOSTS: when set, the only hosts runs may reach
	RunMaxDownloadMB    int      // RUN_MAX_DOWNLOAD_MB (100): what one run may download

	// WORKER_REPLAYER (chromium): "simulated" replays runs without a browser
	// (simulate/), for measuring the fleet; never for real work.
	Replayer              string
	SimulationFailureRate float64 // SIMULATION_FAILURE_RATE (0): chance a simulated run fails
	SimulationCrashRate   float64 // SIMULATION_CRASH_RATE (0): chance a simulated attempt crashes
	// Artifacts (DESIGN.md rule 9).
	ArtifactStore      string        // ARTIFACT_STORE: a folder (./storage/artifacts) or s3://bucket/prefix
	S3Endpoint         string        // S3_ENDPOINT: host:port or URL ("" = AWS)
	S3Region           string        // S3_REGION
	S3AccessKey        string        // AWS_ACCESS_KEY_ID
	S3SecretKey        string        // AWS_SECRET_ACCESS_KEY
	S3PathStyle        bool          // S3_FORCE_PATH_STYLE (false; MinIO and most self-hosted servers need true)
	ArtifactRetention  time.Duration // ARTIFACT_RETENTION_DAYS (30; 0 = keep forever)
	RetentionSchedule  cron.Schedule // RETENTION_SCHEDULE (cron, UTC; daily 03:00)
	RetentionSpec      string
	ArtifactLinkSecret string // ARTIFACT_LINK_SECRET (signs artifact links; generated and logged as a warning if unset)
	// Cluster is every CLUSTER_* setting as one value.
	Cluster cluster.Config
}

// configVars lists every variable with its default.
var configDefaults = map[string]string{
	"DATABASE_URL":            "postgres://root@127.0.0.1:5432/saveaction?sslmode=disable",
	"REDIS_URL":               "redis://127.0.0.1:6379/0",
	"REDIS_PREFIX":            "sa:",
	"PORT":                    "3001",
	"HOST":                    "0.0.0.0",
	"WORKER_CONCURRENCY":      "3",
	"WORKER_NAME":             "",
	"LOG_LEVEL":               "info",
	"LOG_FORMAT":              "",
	"VIDEO_STORAGE_PATH":      "./storage/videos",
	"SCREENSHOT_STORAGE_PATH": "./storage/screenshots",
	"FILES_PATH":              "./storage/files",
	"CHROME_BIN":              "",
	"LEASE_SECONDS":           "30",
	"SHUTDOWN_GRACE_SECONDS":  "30",
	"RATE_LIMIT_PER_MINUTE":   "600",
	"METRICS_PORT":            "9464",
	"CLUSTER_PROVIDER":        "none",
	"CLUSTER_NAME":            "saveaction",
	"CLUSTER_HOSTS":           "",
	"CLUSTER_PORT":            "0",
	"CLUSTER_ETCD_ENDPOINTS":  "",
	"ACTOR_HOST":              "127.0.0.1",
	"ACTOR_PORT":              "0",
	"ACTOR_ADVERTISED_HOST":   "",
	"DEMO_PORT":               "3002",
	"BROWSER_MAX_RUNS":        "50",
	"BROWSER_SPARE_SESSIONS":  "1",
	"BROWSER_MAX_AGE_MINUTES": "30",
	"BROWSER_MAX_RSS_MB":      "1024",
	"RUN_BLOCKED_NETWORKS":    "169.254.0.0/16,fe80::/10",
	"RUN_ALLOWED_HOSTS":       "",
	"RUN_MAX_DOWNLOAD_MB":     "100",
	"ARTIFACT_STORE":          "./storage/artifacts",
	"S3_ENDPOINT":             "",
	"S3_REGION":               "",
	"AWS_ACCESS_KEY_ID":       "",
	"AWS_SECRET_ACCESS_KEY":   "",
	"S3_FORCE_PATH_STYLE":     "false",
	"ARTIFACT_RETENTION_DAYS": "30",
	"RETENTION_SCHEDULE":      actors.DefaultRetentionSchedule,
	"ARTIFACT_LINK_SECRET":    "",
	"WORKER_REPLAYER":         ReplayerChromium,
	"SIMULATION_FAILURE_RATE": "0",
	"SIMULATION_CRASH_RATE":   "0",
}

// Replayers a worker may use (WORKER_REPLAYER).
const (
	ReplayerChromium  = "chromium"
	ReplayerSimulated = "simulated"
)

// loadConfig reads the environment, then flags of the same names from args.
// The error names the variable at fault.
func loadConfig(name string, args []string, overrides map[string]string) (*Config, []string, error) {
	vals := map[string]string{}
	set := map[string]bool{} // given by the environment or a flag, not defaulted
	for k, def := range configDefaults {
		vals[k] = def
		if v, ok := overrides[k]; ok {
			vals[k] = v
		}
		if v, ok := os.LookupEnv(k); ok {
			vals[k] = v
			set[k] = true
		}
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	flagVals := map[string]*string{}
	for k := range configDefaults {
		flagVals[k] = fs.String(k, vals[k], "")
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	for k, p := range flagVals {
		vals[k] = *p
	}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c := &Config{
		DatabaseURL:        vals["DATABASE_URL"],
		RedisURL:           vals["REDIS_URL"],
		RedisPrefix:        vals["REDIS_PREFIX"],
		Host:               vals["HOST"],
		WorkerName:         vals["WORKER_NAME"],
		LogFormat:          vals["LOG_FORMAT"],
		VideoStoragePath:   vals["VIDEO_STORAGE_PATH"],
		ScreenshotStorage:  vals["SCREENSHOT_STORAGE_PATH"],
		FilesPath:          vals["FILES_PATH"],
		ChromeBin:          vals["CHROME_BIN"],
		ClusterProvider:    vals["CLUSTER_PROVIDER"],
		ActorHost:          vals["ACTOR_HOST"],
		ActorAdvertised:    vals["ACTOR_ADVERTISED_HOST"],
		ArtifactStore:      strings.TrimSpace(vals["ARTIFACT_STORE"]),
		S3Endpoint:         strings.TrimSpace(vals["S3_ENDPOINT"]),
		S3Region:           strings.TrimSpace(vals["S3_REGION"]),
		S3AccessKey:        vals["AWS_ACCESS_KEY_ID"],
		S3SecretKey:        vals["AWS_SECRET_ACCESS_KEY"],
		RetentionSpec:      strings.TrimSpace(vals["RETENTION_SCHEDULE"]),
		ArtifactLinkSecret: vals["ARTIFACT_LINK_SECRET"],
	}
	var errs []error
	var err error
	intVar := func(key string, min, max int) int {
		n, err := strconv.Atoi(strings.TrimSpace(vals[key]))
		if err != nil || n < min || n > max {
			errs = append(errs, fmt.Errorf("%s=%q: must be an integer from %d to %d", key, vals[key], min, max))
		}
		return n
	}
	c.Port = intVar("PORT", 1, 65535)
	c.WorkerConcurrency = intVar("WORKER_CONCURRENCY", 1, 10)
	c.Lease = time.Duration(intVar("LEASE_SECONDS", 3, 3600)) * time.Second
	c.ShutdownGrace = time.Duration(intVar("SHUTDOWN_GRACE_SECONDS", 0, 3600)) * time.Second
	c.RateLimitPerMinute = intVar("RATE_LIMIT_PER_MINUTE", 1, 1_000_000)
	c.MetricsPort = intVar("METRICS_PORT", 0, 65535)
	c.MetricsPortExplicit = set["METRICS_PORT"]
	c.ActorPort = intVar("ACTOR_PORT", 0, 65535)
	c.DemoPort = intVar("DEMO_PORT", 0, 65535)
	c.BrowserMaxRuns = intVar("BROWSER_MAX_RUNS", 1, 100000)
	c.BrowserSpares = intVar("BROWSER_SPARE_SESSIONS", 0, 10)
	c.BrowserMaxAgeMinutes = intVar("BROWSER_MAX_AGE_MINUTES", 1, 100000)
	c.BrowserMaxRSSMB = intVar("BROWSER_MAX_RSS_MB", 0, 1<<20)
	c.RunMaxDownloadMB = intVar("RUN_MAX_DOWNLOAD_MB", 1, 1<<20)
	{
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		nets, eps, err := netguard.ParseNetworks(ctx, vals["RUN_BLOCKED_NETWORKS"], nil)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("RUN_BLOCKED_NETWORKS: %w", err))
		}
		c.RunBlockedNetworks, c.RunBlockedEndpoints = nets, eps
	}
	for _, h := range strings.Split(vals["RUN_ALLOWED_HOSTS"], ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		if strings.ContainsAny(h, "/:@ ") || strings.Contains(strings.TrimPrefix(h, "*."), "*") {
			errs = append(errs, fmt.Errorf("RUN_ALLOWED_HOSTS: %q: want a host name, *.domain or an IPv4 address", h))
			continue
		}
		c.RunAllowedHosts = append(c.RunAllowedHosts, h)
	}
	switch c.Replayer = strings.TrimSpace(vals["WORKER_REPLAYER"]); c.Replayer {
	case ReplayerChromium, ReplayerSimulated:
	default:
		errs = append(errs, fmt.Errorf("WORKER_REPLAYER=%q: must be chromium or simulated", vals["WORKER_REPLAYER"]))
	}
	rate := func(key string) float64 {
		f, err := strconv.ParseFloat(strings.TrimSpace(vals[key]), 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
			errs = append(errs, fmt.Errorf("%s=%q: must be a number from 0 to 1", key, vals[key]))
		}
		return f
	}
	c.SimulationFailureRate = rate("SIMULATION_FAILURE_RATE")
	c.SimulationCrashRate = rate("SIMULATION_CRASH_RATE")
	c.ArtifactRetention = time.Duration(intVar("ARTIFACT_RETENTION_DAYS", 0, 36500)) * 24 * time.Hour
	if c.S3PathStyle, err = strconv.ParseBool(strings.TrimSpace(vals["S3_FORCE_PATH_STYLE"])); err != nil {
		errs = append(errs, fmt.Errorf("S3_FORCE_PATH_STYLE=%q: must be true or false", vals["S3_FORCE_PATH_STYLE"]))
	}
	if c.RetentionSchedule, err = actors.ParseSchedule(c.RetentionSpec); err != nil {
		errs = append(errs, fmt.Errorf("RETENTION_SCHEDULE=%q: must be a cron expression such as \"0 3 * * *\": %w", c.RetentionSpec, err))
	}
	switch {
	case c.ArtifactStore == "":
		errs = append(errs, errors.New(`ARTIFACT_STORE="": must be a folder or s3://bucket/prefix`))
	case artifacts.IsS3(c.ArtifactStore):
		if _, _, perr := artifacts.ParseS3URL(c.ArtifactStore); perr != nil {
			errs = append(errs, fmt.Errorf("ARTIFACT_STORE: %w", perr))
		}
	case strings.Contains(c.ArtifactStore, "://"):
		errs = append(errs, fmt.Errorf("ARTIFACT_STORE=%q: must be a folder or s3://bucket/prefix", c.ArtifactStore))
	}
	if c.WorkerName == "" {
		c.WorkerName = defaultWorkerName()
	}
	if err := c.LogLevel.UnmarshalText([]byte(vals["LOG_LEVEL"])); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL=%q: must be debug, info, warn or error", vals["LOG_LEVEL"]))
	}
	switch c.LogFormat {
	case "", "json", "text":
	default:
		errs = append(errs, fmt.Errorf("LOG_FORMAT=%q: must be json or text", c.LogFormat))
	}
	if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		errs = append(errs, fmt.Errorf("DATABASE_URL=%q: must be a postgres:// URL", c.DatabaseURL))
	}
	if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		errs = append(errs, fmt.Errorf("REDIS_URL=%q: must be a redis:// URL", c.RedisURL))
	}
	c.ClusterHosts = commaList(vals["CLUSTER_HOSTS"])
	c.Cluster = cluster.Config{
		Provider:      strings.TrimSpace(c.ClusterProvider),
		Name:          strings.TrimSpace(vals["CLUSTER_NAME"]),
		Hosts:         c.ClusterHosts,
		Port:          intVar("CLUSTER_PORT", 0, 65535),
		EtcdEndpoints: commaList(vals["CLUSTER_ETCD_ENDPOINTS"]),
	}
	if err := c.Cluster.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
	}
	return c, fs.Args(), nil
}

// commaList splits a comma-separated setting, dropping blanks.
func commaList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// configNames is every variable the binary reads, sorted: what deployment
// files may set (`saveaction config names`).
func configNames() []string {
	names := make([]string, 0, len(configDefaults))
	for k := range configDefaults {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func configCmd(args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] != "names" {
		return errors.New("usage: saveaction config names")
	}
	for _, n := range configNames() {
		fmt.Fprintln(stdout, n)
	}
	return nil
}
