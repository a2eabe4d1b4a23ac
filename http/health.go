package http

import (
	"context"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// healthCheckTimeout bounds each dependency check of the health endpoints.
const healthCheckTimeout = 2 * time.Second

// Dependency names reported by readiness.
const (
	depPostgres = "postgres"
	depRedis    = "redis"
)

// health answers GET /api/health.
func (s *server) health(c *fiber.Ctx) error {
	return respond(c, fiber.StatusOK, fiber.Map{"status": "ok", "version": s.version, "timestamp": fmtTime(s.now())})
}

// live answers GET /api/health/live: the process serves requests.
func (s *server) live(c *fiber.Ctx) error {
	return respond(c, fiber.StatusOK, fiber.Map{"status": "alive"})
}

// checkResult is the outcome of one dependency check.
type checkResult struct {
	Status    string  `json:"status"` // up | down
	LatencyMs float64 `json:"latencyMs"`
	Error     string  `json:"error,omitempty"`
}

// checkDeps pings PostgreSQL and Redis (when configured) concurrently.
func (s *server) checkDeps(ctx context.Context) map[string]checkResult {
	ctx, cancel := context.WithTimeout(ctx, healthCheckTimeout)
	defer cancel()
	checks := map[string]func(context.Context) error{
		depPostgres: s.db.PingContext,
	}
	if s.redis != nil {
		checks[depRedis] = func(ctx context.Context) error { return s.redis.Ping(ctx).Err() }
	}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = make(map[string]checkResult, len(checks))
	)
	for name, check := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := check(ctx)
			r := checkResult{Status: "up", LatencyMs: float64(time.Since(start).Microseconds()) / 1000}
			if err != nil {
				// The message names the dependency, not its driver's internals.
				r.Status, r.Error = "down", name+" is unreachable"
				s.log.Warn("health check failed", "dependency", name, "err", err)
			}
			mu.Lock()
			out[name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// ready answers GET /api/health/ready: 200 when PostgreSQL and Redis answer,
// else 503 naming what is down (DATABASE_UNAVAILABLE when PostgreSQL is,
// QUEUE_UNAVAILABLE when only Redis is).
func (s *server) ready(c *fiber.Ctx) error {
	checks := s.checkDeps(c.UserContext())
	var down []string
	for _, name := range []string{depPostgres, depRedis} {
		if r, ok := checks[name]; ok && r.Status != "up" {
			down = append(down, name)
		}
	}
	if len(down) == 0 {
		return respond(c, fiber.StatusOK, fiber.Map{"status": "ready"})
	}
	code := CodeQueueUnavailable
	if down[0] == depPostgres {
		code = CodeDatabaseUnavailable
	}
	msg := "not ready: " + down[0] + " is down"
	if len(down) > 1 {
		msg = "not ready: postgres and redis are down"
	}
	return &apiError{Status: fiber.StatusServiceUnavailable, Code: code, Message: msg,
		Details: fiber.Map{"down": down, "checks": checks}}
}

// healthDetailed answers GET /api/health/detailed: every check with its
// latency, the version and the browsers runs may use. It is 200 even when a
// dependency is down; readiness is the probe that fails.
func (s *server) healthDetailed(c *fiber.Ctx) error {
	checks := s.checkDeps(c.UserContext())
	status := "ok"
	for _, r := range checks {
		if r.Status != "up" {
			status = "degraded"
		}
	}
	return respond(c, fiber.StatusOK, fiber.Map{
		"status": status, "version": s.version, "timestamp": fmtTime(s.now()),
		"checks": checks, "browsers": s.browsers,
	})
}
