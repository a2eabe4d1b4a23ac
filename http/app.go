// Package http is the REST API of the service (API.md): a Fiber app with
// bearer-token auth, per-token rate limiting through Redis, the one error
// envelope, Prometheus RED metrics and the recordings, runs and tokens
// endpoints. The package name shadows net/http; import that as nethttp.
package http

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/saveaction/runner/artifacts"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue"
	"github.com/uptrace/bun"
)

// Limits and defaults of the API.
const (
	// BodyLimit is the largest request body accepted (413 above it).
	BodyLimit = 10 << 20
	// DefaultRateLimitPerMinute applies when Config.RateLimitPerMinute is 0.
	DefaultRateLimitPerMinute = 600
	// CancelWait is how long POST /runs/:id/cancel waits for the worker.
	CancelWait = 5 * time.Second
	// requestTimeout bounds the work of one request (database, Redis).
	requestTimeout = 30 * time.Second
	// DefaultQueueName is recorded as a run's queue when the Dispatcher
	// does not name its stream.
	DefaultQueueName = "runs"
)

// Dispatcher queues a run for the workers (a Redis stream XADD). An error
// means the queue is unavailable.
type Dispatcher interface {
	Enqueue(ctx context.Context, runID uuid.UUID) (entryID string, err error)
}

// Canceller asks the worker that owns a running run to cancel it and waits
// up to timeout for it to confirm.
type Canceller interface {
	CancelRun(ctx context.Context, run *persistence.Run, timeout time.Duration) (confirmed bool, err error)
}

// streamNamer is implemented by dispatchers that can name their stream
// (queue.Queue does); the name is recorded as the run's queue.
type streamNamer interface{ Stream() string }

// Config holds the dependencies and settings of the API.
type Config struct {
	// DB is PostgreSQL, the truth. Required.
	DB *bun.DB
	// Dispatcher queues new runs. Required.
	Dispatcher Dispatcher
	// Canceller reaches the worker of a running run. May be nil: cancel
	// then records cancelRequestedAt and answers 202; the worker sees the
	// flag at its next lease renewal.
	Canceller Canceller
	// Redis backs rate limiting (shared by all API nodes) and readiness.
	// May be nil: each node then limits by itself, and readiness does not
	// check Redis.
	Redis redis.UniversalClient
	// RedisPrefix starts every key the API writes, e.g. "sa:".
	RedisPrefix string
	// Logger receives access and error logs. Nil means slog.Default().
	Logger *slog.Logger
	// Registry receives the HTTP metrics and is served at /metrics. Nil
	// means a new registry of the app's own.
	Registry *prometheus.Registry
	// Version is reported by /api/health.
	Version string
	// RateLimitPerMinute is the number of requests one token may make per
	// minute: 0 means DefaultRateLimitPerMinute, negative means no limit.
	RateLimitPerMinute int
	// BrowsersAvailable are the browsers runs may ask for. Empty means
	// ["chromium"].
	BrowsersAvailable []string
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Events are the per-run event streams: run.queued is published on
	// create, and GET /runs/:id/events reads them. Nil: no events (the
	// endpoint answers 503).
	Events *queue.Events
	// Lifetime ends when the node begins to shut down; open event streams
	// end then (Fiber's shutdown would wait for them otherwise). Nil means
	// they end only with their run or client.
	Lifetime context.Context
	// Heartbeat is the interval of the event stream's keep-alive comment.
	// 0 means DefaultHeartbeat.
	Heartbeat time.Duration
	// Artifacts serves runs' videos and screenshots. Nil: artifact
	// endpoints answer 404 ARTIFACT_NOT_FOUND.
	Artifacts artifacts.Store
	// ArtifactLinkSecret signs artifact links (HMAC-SHA256). Empty: a
	// random secret of this process, so links work on this node only
	// until it restarts.
	ArtifactLinkSecret []byte
	// Owners reaches the owner of a running run for its live status (GET
	// /runs/:id/live). Nil: the live status is read from PostgreSQL.
	Owners RunOwners
	// Fleet reaches the worker nodes (GET /workers, drain, resume). Nil
	// means this node sees none.
	Fleet Fleet
	// TokenCacheTTL is how long an authenticated token is trusted without
	// asking PostgreSQL again (0: DefaultTokenCacheTTL; negative: no
	// cache). Revocations through the API reach every node at once over
	// Redis pub/sub while Lifetime is set and Redis is up; the TTL bounds
	// the rest.
	TokenCacheTTL time.Duration
}

// server is the state the handlers share; it is built once by New and
// never changed afterwards, but for the limiter's back-off.
type server struct {
	db         *bun.DB
	dispatcher Dispatcher
	canceller  Canceller
	redis      redis.UniversalClient
	prefix     string
	log        *slog.Logger
	registry   *prometheus.Registry
	metrics    *metrics
	openapi    []byte
	version    string
	rateLimit  int
	browsers   []string
	clock      func() time.Time
	events     *queue.Events
	hubs       *hubs
	heartbeat  time.Duration
	artifacts  artifacts.Store
	linkSecret []byte
	fleet      Fleet
	owners     RunOwners
	tokens     *tokenCache // nil: no cache
	refs       *refCache   // action references per recording version
	readSlots  chan struct{}
	estimates  estimateCache
	// limiterOffUntil (unix ns) pauses the shared (Redis) rate limiting
	// after a Redis failure; local counts in the meantime.
	limiterOffUntil atomic.Int64
	shared          sharedCounts
	local           localLimiter
}

func (s *server) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

// New builds the Fiber app serving the whole API.
func New(cfg Config) (*fiber.App, error) {
	if cfg.DB == nil {
		return nil, errors.New("http: Config.DB is required")
	}
	if cfg.Dispatcher == nil {
		return nil, errors.New("http: Config.Dispatcher is required")
	}
	s := &server{
		db:         cfg.DB,
		dispatcher: cfg.Dispatcher,
		canceller:  cfg.Canceller,
		redis:      cfg.Redis,
		prefix:     cfg.RedisPrefix,
		log:        cfg.Logger,
		registry:   cfg.Registry,
		version:    cfg.Version,
		rateLimit:  cfg.RateLimitPerMinute,
		browsers:   append([]string(nil), cfg.BrowsersAvailable...),
		clock:      cfg.Now,
		artifacts:  cfg.Artifacts,
		linkSecret: cfg.ArtifactLinkSecret,
		fleet:      cfg.Fleet,
		owners:     cfg.Owners,
	}
	if len(s.linkSecret) == 0 {
		s.linkSecret = make([]byte, 32)
		if _, err := rand.Read(s.linkSecret); err != nil {
			return nil, fmt.Errorf("http: artifact link secret: %w", err)
		}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
	}
	if s.rateLimit == 0 {
		s.rateLimit = DefaultRateLimitPerMinute
	}
	if len(s.browsers) == 0 {
		s.browsers = []string{"chromium"}
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.version == "" {
		s.version = "dev"
	}
	s.heartbeat = cfg.Heartbeat
	if s.heartbeat <= 0 {
		s.heartbeat = DefaultHeartbeat
	}
	if cfg.Events != nil {
		s.events = cfg.Events
		life := cfg.Lifetime
		if life == nil {
			life = context.Background()
		}
		s.hubs = newHubs(life, cfg.Events, s.log)
	}
	if ttl := cfg.TokenCacheTTL; ttl >= 0 {
		if ttl == 0 {
			ttl = DefaultTokenCacheTTL
		}
		s.tokens = newTokenCache(ttl)
		if s.redis != nil && cfg.Lifetime != nil {
			go followTokenInvalidations(cfg.Lifetime, s.redis, s.prefix+tokenInvalidateChannel, s.tokens, s.log)
		}
	}
	s.refs = newRefCache()
	s.readSlots = newReadSlots()
	m, err := newMetrics(s.registry)
	if err != nil {
		return nil, fmt.Errorf("http: register metrics: %w", err)
	}
	s.metrics = m
	if s.openapi, err = buildOpenAPI(s.version); err != nil {
		return nil, err
	}

	app := fiber.New(fiber.Config{
		AppName:               "saveaction",
		BodyLimit:             BodyLimit,
		ErrorHandler:          s.handleError,
		DisableStartupMessage: true,
		// Values taken from a request outlive it (logs, goroutines of the
		// database driver); copying them is cheaper than a use-after-reuse bug.
		Immutable:     true,
		ReadTimeout:   time.Minute,
		IdleTimeout:   2 * time.Minute,
		CaseSensitive: true,
	})
	app.Use(s.observe)
	s.routes(app)
	return app, nil
}

// routes registers every endpoint. Each route's first handler is open or
// guard, which names the route for metrics and logs (and guard
// authenticates); the OpenAPI test checks this table against openapi.go.
// Plain reads (a database read, then the answer) then take a read slot
// (readslots.go); streams and downloads do not.
func (s *server) routes(app *fiber.App) {
	app.Get("/api/health", s.open, s.health)
	app.Get("/api/health/live", s.open, s.live)
	app.Get("/api/health/ready", s.open, s.ready)
	app.Get("/api/health/detailed", s.open, s.healthDetailed)
	app.Get("/metrics", s.open, s.metricsHandler())
	app.Get("/api/openapi.json", s.open, s.openAPI)
	app.Get("/", s.open, s.uiIndex)
	app.Get("/ui/:file", s.open, s.uiAsset)

	v1 := app.Group("/api/v1")
	v1.Post("/tokens", s.guard(persistence.ScopeTokensManage), s.createToken)
	v1.Get("/tokens", s.guard(persistence.ScopeTokensManage), s.read, s.listTokens)
	v1.Post("/tokens/:id/revoke", s.guard(persistence.ScopeTokensManage), s.revokeToken)
	v1.Delete("/tokens/:id", s.guard(persistence.ScopeTokensManage), s.deleteToken)

	v1.Post("/recordings", s.guard(persistence.ScopeRecordingsWrite), s.createRecording)
	v1.Get("/recordings", s.guard(persistence.ScopeRecordingsRead), s.read, s.listRecordings)
	v1.Get("/recordings/:id", s.guard(persistence.ScopeRecordingsRead), s.read, s.getRecording)
	v1.Get("/recordings/:id/export", s.guard(persistence.ScopeRecordingsRead), s.exportRecording)
	v1.Put("/recordings/:id", s.guard(persistence.ScopeRecordingsWrite), s.updateRecording)
	v1.Delete("/recordings/:id", s.guard(persistence.ScopeRecordingsWrite), s.deleteRecording)

	v1.Post("/runs", s.guard(persistence.ScopeRunsExecute), s.createRun)
	v1.Get("/runs", s.guard(persistence.ScopeRunsRead), s.read, s.listRuns)
	v1.Get("/runs/:id", s.guard(persistence.ScopeRunsRead), s.read, s.getRun)
	v1.Get("/runs/:id/actions", s.guard(persistence.ScopeRunsRead), s.read, s.listRunActions)
	v1.Get("/runs/:id/events", s.guard(persistence.ScopeRunsRead), s.runEvents)
	v1.Get("/runs/:id/live", s.guard(persistence.ScopeRunsRead), s.liveRun)
	v1.Post("/runs/:id/cancel", s.guard(persistence.ScopeRunsExecute), s.cancelRun)
	v1.Post("/runs/:id/retry", s.guard(persistence.ScopeRunsExecute), s.retryRun)
	v1.Delete("/runs/:id", s.guard(persistence.ScopeRunsExecute), s.deleteRun)
	// Artifacts; GET routes answer HEAD too (Fiber adds it).
	v1.Get("/runs/:id/video", s.guardArtifact(persistence.ScopeRunsRead), s.getVideo)
	v1.Get("/runs/:id/screenshots", s.guard(persistence.ScopeRunsRead), s.read, s.listScreenshots)
	v1.Get("/runs/:id/screenshots/:name", s.guardArtifact(persistence.ScopeRunsRead), s.getScreenshot)
	v1.Post("/runs/:id/artifact-links", s.guard(persistence.ScopeRunsRead), s.createArtifactLinks)

	v1.Get("/workers", s.guard(persistence.ScopeWorkersRead), s.read, s.listWorkers)
	v1.Post("/workers/:name/drain", s.guard(persistence.ScopeWorkersManage), s.drainWorker)
	v1.Post("/workers/:name/resume", s.guard(persistence.ScopeWorkersManage), s.resumeWorker)
}
