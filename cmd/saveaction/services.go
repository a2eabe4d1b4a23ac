package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/saveaction/runner/actors"
	"github.com/saveaction/runner/artifacts"
	"github.com/saveaction/runner/browser"
	"github.com/saveaction/runner/cluster"
	"github.com/saveaction/runner/examples"
	api "github.com/saveaction/runner/http"
	"github.com/saveaction/runner/netguard"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue"
	"github.com/saveaction/runner/service"
)

func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel, ReplaceAttr: seedLogKeys}
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

// defaultWorkerName names a node uniquely: the host name tells nodes on
// different machines apart, the pid nodes on one host, and the random
// suffix containers of one image, where every pid is the same small number.
func defaultWorkerName() string {
	host, err := os.Hostname()
	if err != nil || sanitizeName(host) == "" {
		host = "worker"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", sanitizeName(host), os.Getpid(), hex.EncodeToString(b))
}

// sanitizeName keeps a name to what consumer and actor names take well:
// letters, digits, '-', '_' and '.', at most 48 of them.
func sanitizeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return -1
	}, s)
	if len(s) > 48 {
		s = s[:48]
	}
	return s
}

// backends are the connections every long-running command needs.
type backends struct {
	cfg   *Config
	log   *slog.Logger
	db    *bun.DB
	rdb   *redis.Client
	queue *queue.Queue
	runs  *persistence.Runs
	// events is the publisher of run events (started here, closed by Close).
	events *queue.Events
	// eventsRDB is the client of the API's event streams: each watched run
	// holds one connection in a blocking read, so they get a pool of their
	// own rather than starve the rate limiter's.
	eventsRDB *redis.Client
	store     artifacts.Store
}

// eventsPoolSize bounds the runs one API node can stream at once.
const eventsPoolSize = 1024

// openBackends connects to PostgreSQL and Redis. With mustReach (worker,
// dev) either one unreachable is an error naming its variable: a worker
// cannot do anything without both, so it had better fail where its
// supervisor sees it. Without it (api) an unreachable backend is logged and
// its client kept: the API starts, answers 503 for what needs the missing
// backend, and the drivers reconnect by themselves when it is back.
func openBackends(ctx context.Context, cfg *Config, log *slog.Logger, mustReach bool) (*backends, error) {
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	store, err := openArtifactStore(cfg)
	if err != nil {
		return nil, err
	}
	db, err := persistence.Open(ctx, cfg.DatabaseURL)
	if err != nil && (mustReach || !persistence.IsUnavailable(err)) {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if err != nil {
		log.Warn("PostgreSQL is unreachable; serving 503 DATABASE_UNAVAILABLE until it answers", "error", err)
		if db, err = lazyDB(cfg.DatabaseURL); err != nil {
			return nil, fmt.Errorf("DATABASE_URL: %w", err)
		}
	}
	rdb := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		if mustReach {
			_ = db.Close()
			_ = rdb.Close()
			return nil, fmt.Errorf("REDIS_URL: connect to Redis at %s: %w", opt.Addr, err)
		}
		log.Warn("Redis is unreachable; runs cannot be queued (503 QUEUE_UNAVAILABLE) until it answers",
			"address", opt.Addr, "error", err)
	}
	events := queue.NewEvents(rdb, cfg.RedisPrefix, log)
	events.Start()
	eopt := *opt
	eopt.PoolSize = eventsPoolSize
	return &backends{cfg: cfg, log: log, db: db, rdb: rdb,
		queue: queue.New(rdb, cfg.RedisPrefix), runs: &persistence.Runs{DB: db},
		events: events, eventsRDB: redis.NewClient(&eopt), store: store}, nil
}

// openArtifactStore is the store ARTIFACT_STORE names. It does not contact
// a bucket: a store that is down shows per upload (recorded on the run)
// and per download (503), never as a node that will not start.
func openArtifactStore(cfg *Config) (artifacts.Store, error) {
	s, err := artifacts.Open(artifacts.Config{Store: cfg.ArtifactStore, S3: artifacts.S3Config{
		Endpoint: cfg.S3Endpoint, Region: cfg.S3Region, AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey,
		PathStyle: cfg.S3PathStyle,
	}})
	if err != nil {
		return nil, fmt.Errorf("ARTIFACT_STORE: %w", err)
	}
	return s, nil
}

// artifactLinkSecret is ARTIFACT_LINK_SECRET, or a random one of this
// process with a warning: links then work on this node until it restarts.
func artifactLinkSecret(cfg *Config, log *slog.Logger) []byte {
	if cfg.ArtifactLinkSecret != "" {
		return []byte(cfg.ArtifactLinkSecret)
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	log.Warn("ARTIFACT_LINK_SECRET is not set: signed artifact links use a random secret and work only on this API node until it restarts; set the same secret on every API node")
	return b
}

// lazyDB is a handle on a PostgreSQL that does not answer yet: the pool
// connects on first use. Its pool settings are those of persistence.Open.
func lazyDB(dsn string) (*bun.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	sqldb := stdlib.OpenDB(*cfg)
	sqldb.SetMaxOpenConns(20)
	sqldb.SetMaxIdleConns(10)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	return bun.NewDB(sqldb, pgdialect.New()), nil
}

func (b *backends) Close() {
	// The last events of runs that just ended (a drain) still go out.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	if err := b.events.Close(ctx); err != nil {
		b.log.Warn("run events not written before exit", "error", err)
	}
	cancel()
	_ = b.eventsRDB.Close()
	_ = b.rdb.Close()
	_ = b.db.Close()
}

// redisLogger sends go-redis's own messages (one per failed dial while
// Redis is down) to the structured log at debug: the failures that matter
// are logged where they are handled, with their request.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}

// apiServer is the REST API as a component. canceller reaches the owners
// of running runs, for cancel and for their live status.
func apiServer(b *backends, canceller *actors.Canceller, reg *prometheus.Registry, fleet api.Fleet) (*service.Server, error) {
	// Ends before Fiber's shutdown, which would otherwise wait for every
	// open event stream.
	life, stopStreams := context.WithCancel(context.Background())
	app, err := api.New(api.Config{
		Events:             queue.NewEvents(b.eventsRDB, b.cfg.RedisPrefix, b.log),
		Lifetime:           life,
		DB:                 b.db,
		Dispatcher:         b.queue,
		Canceller:          canceller,
		Owners:             runOwners{c: canceller},
		Redis:              b.rdb,
		RedisPrefix:        b.cfg.RedisPrefix,
		Logger:             b.log,
		Registry:           reg,
		Version:            version,
		RateLimitPerMinute: b.cfg.RateLimitPerMinute,
		BrowsersAvailable:  []string{"chromium"},
		Artifacts:          b.store,
		ArtifactLinkSecret: artifactLinkSecret(b.cfg, b.log),
		Fleet:              fleet,
	})
	if err != nil {
		stopStreams()
		return nil, err
	}
	return service.NewServer("API server", service.ServerFuncs{
		Listen: func() (net.Listener, error) {
			ln, err := net.Listen("tcp", net.JoinHostPort(b.cfg.Host, strconv.Itoa(b.cfg.Port)))
			if err != nil {
				return nil, fmt.Errorf("PORT %d: %w", b.cfg.Port, err)
			}
			b.log.Info("API listening", "address", "http://"+ln.Addr().String())
			return ln, nil
		},
		Serve: app.Listener,
		Shutdown: func(ctx context.Context) error {
			stopStreams()
			return app.ShutdownWithContext(ctx)
		},
		StopTimeout: apiStopTimeout,
	}), nil
}

// apiStopTimeout bounds the API's graceful stop (requests in flight).
const apiStopTimeout = 10 * time.Second

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// remoteService makes sys a remote node, so cancel messages cross between
// API and workers. It is stopped last, after what sends through it.
func remoteService(sys *actor.ActorSystem, cfg *Config, log *slog.Logger) service.Service {
	var r *remote.Remote
	return service.New("actor remote", service.Funcs{
		Start: func(context.Context) error {
			rr, addr, err := actors.StartRemote(sys, cfg.ActorHost, cfg.ActorPort, cfg.ActorAdvertised)
			if err != nil {
				return err
			}
			r = rr
			log.Info("actor node started", "address", addr)
			return nil
		},
		Stop: func(context.Context) error {
			// Not graceful: protoactor's graceful stop can wait 10 s on gRPC
			// streams of other nodes, and nothing is left to send by now.
			r.Shutdown(false)
			return nil
		},
	})
}

// workerService is the coordinator with its browser pool: started, it
// pulls runs; stopped, it drains within the shutdown grace and hands the
// rest back (DESIGN.md rule 6), then closes every browser.
//
// ownAddrs, when set, are more actor remotes of this node that runs must
// not reach (the cluster membership's).
func workerService(b *backends, sys *actor.ActorSystem, reg prometheus.Registerer, m *actors.Metrics, metricsOn bool, started *atomic.Pointer[actors.Worker], ownAddrs func() []string) service.Service {
	cfg := b.cfg
	var (
		pool *actors.Pool
		w    *actors.Worker
	)
	return service.New("worker", service.Funcs{
		Start: func(ctx context.Context) error {
			if cfg.Replayer == ReplayerSimulated {
				var err error
				w, err = startSimulatedWorker(ctx, b, sys, m)
				if err != nil {
					return err
				}
				started.Store(w)
				return nil
			}
			bin := cfg.ChromeBin
			if bin == "" {
				var err error
				if bin, err = browser.FindChrome(); err != nil {
					return fmt.Errorf("CHROME_BIN: %w", err)
				}
			} else if _, err := os.Stat(bin); err != nil {
				return fmt.Errorf("CHROME_BIN=%q: %w", bin, err)
			}
			for _, dir := range []string{cfg.ScreenshotStorage, cfg.VideoStoragePath, cfg.FilesPath} {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return fmt.Errorf("storage folder %s: %w", dir, err)
				}
			}
			if rep := actors.SweepStaleBrowsers(""); rep.Killed+rep.Profiles > 0 {
				b.log.Info("swept browsers left by a dead worker", "killed", rep.Killed, "profiles", rep.Profiles)
			}
			// What runs may reach (netguard): the worker's own services are
			// blocked, so the actor remote must be listening by now.
			var more []string
			if ownAddrs != nil {
				more = ownAddrs()
			}
			policy := runPolicy(ctx, cfg, sys.Address(), metricsOn, b.log, netguard.NewMetrics(reg), more...)
			b.log.Info("run policy", "blockedNetworks", fmt.Sprint(policy.Network.BlockedNetworks),
				"blockedEndpoints", fmt.Sprint(policy.Network.BlockedEndpoints), "allowedHosts", fmt.Sprint(policy.Network.AllowedHosts))
			if why := browser.NoSandboxReason(); why != "" {
				b.log.Warn("Chromium runs WITHOUT its sandbox", "reason", why)
			}
			pool = actors.NewPool(actors.PoolConfig{
				Launch: func(ctx context.Context) (*browser.Browser, error) {
					return browser.Launch(ctx, browser.LaunchOptions{Bin: bin, Headless: true, Policy: policy, Logger: b.log})
				},
				MaxRuns:     cfg.BrowserMaxRuns,
				Spares:      cfg.BrowserSpares,
				MaxAge:      time.Duration(cfg.BrowserMaxAgeMinutes) * time.Minute,
				MaxRSSBytes: int64(cfg.BrowserMaxRSSMB) << 20,
				Metrics:     m,
			})
			var err error
			w, err = actors.StartWorker(ctx, actors.Deps{
				System: sys, Runs: b.runs, Queue: b.queue, Pool: pool, Log: b.log, Metrics: m,
				Worker: cfg.WorkerName, Version: version, Concurrency: cfg.WorkerConcurrency, Lease: cfg.Lease,
				ScreenshotDir: cfg.ScreenshotStorage, VideoDir: cfg.VideoStoragePath, FilesDir: cfg.FilesPath,
				Events:    b.events,
				Artifacts: b.store,
			})
			if err != nil {
				pool.Close()
				return err
			}
			started.Store(w)
			b.log.Info("worker started", "worker", cfg.WorkerName, "concurrency", cfg.WorkerConcurrency, "chromium", bin)
			return nil
		},
		Stop: func(ctx context.Context) error {
			b.log.Info("shutting down worker", "grace", cfg.ShutdownGrace)
			err := w.Shutdown(ctx, cfg.ShutdownGrace)
			started.Store(nil)
			if pool != nil {
				pool.Close()
			}
			return err
		},
		// The grace for the runs, then time to hand back the rest.
		StopTimeout: cfg.ShutdownGrace + 15*time.Second,
	})
}

// reconcilerService is the loop that re-dispatches runs whose stream
// entries were lost (one node at a time, under a Redis lock).
func reconcilerService(b *backends, m *actors.Metrics) service.Service {
	rec := newReconciler(b, m)
	return service.New("reconciler", service.Funcs{
		Run: func(ctx context.Context) error { rec.Run(ctx); return nil },
	})
}

// newRetention is the artifact retention of this node's configuration.
func newRetention(b *backends) *actors.Retention {
	return &actors.Retention{Runs: b.runs, Store: b.store, Redis: b.rdb, LockKey: b.cfg.RedisPrefix + "retention:lock",
		Owner: b.cfg.WorkerName, MaxAge: b.cfg.ArtifactRetention, Schedule: b.cfg.RetentionSchedule, Log: b.log}
}

// retentionService removes expired artifacts and orphans on
// RETENTION_SCHEDULE (one node at a time, under a Redis lock), on a node
// without a cluster; in a cluster retention runs in the maintenance
// singleton.
func retentionService(b *backends) service.Service {
	r := newRetention(b)
	return service.New("artifact retention", service.Funcs{
		Run: func(ctx context.Context) error { r.Run(ctx); return nil },
	})
}

// maintenance is the work of the cluster's maintenance singleton: every
// loop runs until ctx ends (the activation stops or moves), and it returns
// when all have.
func maintenance(loops ...func(context.Context)) func(context.Context) {
	return func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, loop := range loops {
			wg.Add(1)
			go func() {
				defer wg.Done()
				loop(ctx)
			}()
		}
		wg.Wait()
	}
}

// newReconciler is the reconciler of this node's configuration.
func newReconciler(b *backends, m *actors.Metrics) *actors.Reconciler {
	return &actors.Reconciler{Runs: b.runs, Queue: b.queue, Redis: b.rdb, LockKey: b.cfg.RedisPrefix + "reconciler:lock",
		Owner: b.cfg.WorkerName, Lease: b.cfg.Lease, Log: b.log, Metrics: m}
}

// clusterService is this node's cluster membership, on an actor system of
// its own (a member that was frozen past detection joins again under a
// fresh member id, so that system is replaced while sys and its runs go on);
// sys keeps its remote from remoteService. A worker is a member: when
// another worker leaves, its pending runs are claimed at once, and the
// reconciler and artifact retention run as the cluster's one maintenance
// identity; other nodes
// reach its coordinator at its member's address. An API node (worker nil)
// is a client that sees the members for the fleet view and cancels.
func clusterService(cfg *Config, sys *actor.ActorSystem, log *slog.Logger, worker *atomic.Pointer[actors.Worker], maintenance func(context.Context)) (*cluster.Node, service.Service) {
	advertised := ""
	if cfg.ActorAdvertised != "" {
		advertised = cfg.ActorAdvertised
		if h, _, err := net.SplitHostPort(cfg.ActorAdvertised); err == nil {
			advertised = h
		}
	}
	opts := cluster.Options{Host: cfg.ActorHost, AdvertisedHost: advertised, Log: log, Local: sys,
		NewSystem: func() *actor.ActorSystem { return actors.NewSystem(log) }}
	if worker != nil {
		opts.Worker = cfg.WorkerName
		opts.Maintenance = maintenance
		opts.OnLeft = func(name string) {
			if w := worker.Load(); w != nil {
				w.MemberLeft(name)
			}
		}
		name := actors.CoordinatorName(cfg.WorkerName)
		opts.Forward = func() map[string]*actor.PID {
			return map[string]*actor.PID{name: actor.NewPID(sys.Address(), name)}
		}
	}
	n := cluster.New(cfg.Cluster, opts)
	return n, service.New(n.Name(), service.Funcs{
		Start: n.Start,
		Stop:  n.Stop,
	})
}

// metricsServer serves the worker's /metrics on METRICS_PORT.
func metricsServer(cfg *Config, reg *prometheus.Registry, log *slog.Logger) *service.Server {
	mux := nethttp.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &nethttp.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return service.NewServer("metrics server", service.ServerFuncs{
		Listen:   func() (net.Listener, error) { return listenMetrics(cfg, log) },
		Serve:    srv.Serve,
		Shutdown: srv.Shutdown,
	})
}

// listenMetrics listens on METRICS_PORT. When the port was left at its
// default and is taken (a second worker on the host), it listens on a free
// port instead and logs where: workers on one host then start with no
// setting of their own. A port set explicitly and taken is an error.
func listenMetrics(cfg *Config, log *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.MetricsPort)))
	if err != nil && !cfg.MetricsPortExplicit && errors.Is(err, syscall.EADDRINUSE) {
		var ferr error
		if ln, ferr = net.Listen("tcp", net.JoinHostPort(cfg.Host, "0")); ferr == nil {
			log.Warn("the default METRICS_PORT is taken (another worker on this host?); metrics are served on a free port instead",
				"taken", cfg.MetricsPort, "address", "http://"+ln.Addr().String()+"/metrics")
			err = nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("METRICS_PORT %d: %w", cfg.MetricsPort, err)
	}
	log.Info("worker metrics listening", "address", "http://"+ln.Addr().String()+"/metrics")
	return ln, nil
}

// demoServer serves the examples/ demo site that the example recordings use.
func demoServer(cfg *Config, log *slog.Logger) *service.Server {
	srv := &nethttp.Server{Handler: nethttp.FileServerFS(examples.Site()), ReadHeaderTimeout: 5 * time.Second}
	return service.NewServer("demo site", service.ServerFuncs{
		Listen: func() (net.Listener, error) {
			ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.DemoPort)))
			if err != nil {
				return nil, fmt.Errorf("DEMO_PORT %d: %w", cfg.DemoPort, err)
			}
			log.Info("demo site listening", "address", "http://"+ln.Addr().String()+"/")
			return ln, nil
		},
		Serve:    srv.Serve,
		Shutdown: srv.Shutdown,
	})
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	if fw, ok := w.(*flushingWriter); ok {
		w = fw.out
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
