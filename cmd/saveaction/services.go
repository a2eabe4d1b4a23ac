package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/saveaction/runner/actors"
	"github.com/saveaction/runner/browser"
	api "github.com/saveaction/runner/http"
	"github.com/saveaction/runner/netguard"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue"
)

func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// backends are the connections every long-running command needs.
type backends struct {
	cfg   *Config
	log   *slog.Logger
	db    *bun.DB
	rdb   *redis.Client
	queue *queue.Queue
	runs  *persistence.Runs
}

func openBackends(ctx context.Context, cfg *Config, log *slog.Logger) (*backends, error) {
	db, err := persistence.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = db.Close()
		_ = rdb.Close()
		return nil, fmt.Errorf("REDIS_URL: connect to Redis at %s: %w", opt.Addr, err)
	}
	return &backends{cfg: cfg, log: log, db: db, rdb: rdb,
		queue: queue.New(rdb, cfg.RedisPrefix), runs: &persistence.Runs{DB: db}}, nil
}

func (b *backends) Close() {
	_ = b.rdb.Close()
	_ = b.db.Close()
}

// startAPI builds the Fiber app and serves it until Shutdown.
func startAPI(b *backends, canceller api.Canceller, reg *prometheus.Registry) (*fiber.App, net.Listener, error) {
	app, err := api.New(api.Config{
		DB:                 b.db,
		Dispatcher:         b.queue,
		Canceller:          canceller,
		Redis:              b.rdb,
		RedisPrefix:        b.cfg.RedisPrefix,
		Logger:             b.log,
		Registry:           reg,
		Version:            version,
		RateLimitPerMinute: b.cfg.RateLimitPerMinute,
		BrowsersAvailable:  []string{"chromium"},
	})
	if err != nil {
		return nil, nil, err
	}
	addr := net.JoinHostPort(b.cfg.Host, strconv.Itoa(b.cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("PORT %d: %w", b.cfg.Port, err)
	}
	go func() {
		if err := app.Listener(ln); err != nil {
			b.log.Error("API server stopped", "error", err)
		}
	}()
	b.log.Info("API listening", "address", "http://"+ln.Addr().String())
	return app, ln, nil
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// workerNode is a running worker: pool, coordinator and metrics endpoint.
type workerNode struct {
	bpool   *actors.Pool
	worker  *actors.Worker
	metrics *nethttp.Server
	// stopReconciler ends the reconciler loop and waits for it.
	stopReconciler func()
}

func startWorker(ctx context.Context, b *backends, sys *actor.ActorSystem, reg *prometheus.Registry, serveMetrics bool) (*workerNode, error) {
	cfg := b.cfg
	bin := cfg.ChromeBin
	if bin == "" {
		var err error
		if bin, err = browser.FindChrome(); err != nil {
			return nil, fmt.Errorf("CHROME_BIN: %w", err)
		}
	} else if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("CHROME_BIN=%q: %w", bin, err)
	}
	for _, dir := range []string{cfg.ScreenshotStorage, cfg.VideoStoragePath, cfg.FilesPath} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("storage folder %s: %w", dir, err)
		}
	}
	if rep := actors.SweepStaleBrowsers(""); rep.Killed+rep.Profiles > 0 {
		b.log.Info("swept browsers left by a dead worker", "killed", rep.Killed, "profiles", rep.Profiles)
	}
	m := actors.NewMetrics(reg)
	policy := runPolicy(ctx, cfg, sys.Address(), serveMetrics, b.log, netguard.NewMetrics(reg))
	b.log.Info("run policy", "blockedNetworks", fmt.Sprint(policy.Network.BlockedNetworks),
		"blockedEndpoints", fmt.Sprint(policy.Network.BlockedEndpoints), "allowedHosts", fmt.Sprint(policy.Network.AllowedHosts))
	if why := browser.NoSandboxReason(); why != "" {
		b.log.Warn("Chromium runs WITHOUT its sandbox", "reason", why)
	}
	pool := actors.NewPool(actors.PoolConfig{
		Launch: func(ctx context.Context) (*browser.Browser, error) {
			return browser.Launch(ctx, browser.LaunchOptions{Bin: bin, Headless: true, Policy: policy, Logger: b.log})
		},
		MaxRuns:     cfg.BrowserMaxRuns,
		MaxAge:      time.Duration(cfg.BrowserMaxAgeMinutes) * time.Minute,
		MaxRSSBytes: int64(cfg.BrowserMaxRSSMB) << 20,
		Metrics:     m,
	})
	w, err := actors.StartWorker(ctx, actors.Deps{
		System: sys, Runs: b.runs, Queue: b.queue, Pool: pool, Log: b.log, Metrics: m,
		Worker: cfg.WorkerName, Concurrency: cfg.WorkerConcurrency, Lease: cfg.Lease,
		ScreenshotDir: cfg.ScreenshotStorage, VideoDir: cfg.VideoStoragePath, FilesDir: cfg.FilesPath,
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	rctx, stopReconciler := context.WithCancel(context.Background())
	rec := &actors.Reconciler{Runs: b.runs, Queue: b.queue, Redis: b.rdb, LockKey: cfg.RedisPrefix + "reconciler:lock",
		Owner: cfg.WorkerName, Lease: cfg.Lease, MaxDeliveries: actors.DefaultMaxDeliveries, Log: b.log, Metrics: m}
	reconciled := make(chan struct{})
	go func() { defer close(reconciled); rec.Run(rctx) }()
	n := &workerNode{bpool: pool, worker: w, stopReconciler: func() { stopReconciler(); <-reconciled }}
	if serveMetrics && cfg.MetricsPort != 0 {
		mux := nethttp.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		n.metrics = &nethttp.Server{Addr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.MetricsPort)), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		ln, err := net.Listen("tcp", n.metrics.Addr)
		if err != nil {
			n.stop(b.log, 0)
			return nil, fmt.Errorf("METRICS_PORT %d: %w", cfg.MetricsPort, err)
		}
		go func() { _ = n.metrics.Serve(ln) }()
		b.log.Info("worker metrics listening", "address", "http://"+ln.Addr().String()+"/metrics")
	}
	b.log.Info("worker started", "worker", cfg.WorkerName, "concurrency", cfg.WorkerConcurrency, "chromium", bin)
	return n, nil
}

// stop drains the worker within grace and closes every browser.
func (n *workerNode) stop(log *slog.Logger, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace+15*time.Second)
	defer cancel()
	n.stopReconciler()
	if err := n.worker.Shutdown(ctx, grace); err != nil {
		log.Warn("worker shutdown", "error", err)
	}
	n.bpool.Close()
	if n.metrics != nil {
		_ = n.metrics.Close()
	}
}

func listen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
