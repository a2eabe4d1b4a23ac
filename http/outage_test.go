package http

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// downRedis is a client of a Redis that is not there, failing fast.
func downRedis(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: closedPort(t), MaxRetries: -1, DialerRetries: 1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestQueueUnavailableLeavesNoRun uses the real dispatcher (go-redis XADD)
// against a port where no Redis listens.
func TestQueueUnavailableLeavesNoRun(t *testing.T) {
	t.Parallel()
	down := downRedis(t)
	h := newHarness(t, func(c *Config) { c.Dispatcher = queue.New(down, "sa_test_down:"); c.Redis = down })
	recID := h.uploadRecording()
	r := h.do("POST", "/api/v1/runs", map[string]any{"recordingId": recID}, withHeader(HeaderIdempotencyKey, "k1")).
		wantError(t, 503, CodeQueueUnavailable)
	if strings.Contains(string(r.Raw), "127.0.0.1") || strings.Contains(string(r.Raw), "dial") {
		t.Fatalf("driver internals leaked: %s", r.Raw)
	}
	ctx := context.Background()
	n, err := testDB().NewSelect().Model((*persistence.Run)(nil)).Where("user_id = ?", h.user.ID).Count(ctx)
	if err != nil || n != 0 {
		t.Fatalf("%d runs left behind (%v)", n, err)
	}
	n, err = testDB().NewSelect().Model((*persistence.RunAction)(nil)).
		Where("run_id IN (SELECT id FROM runs WHERE user_id = ?)", h.user.ID).Count(ctx)
	if err != nil || n != 0 {
		t.Fatalf("%d actions left behind (%v)", n, err)
	}
	// Readiness names Redis; the rest of the API still works.
	rd := h.do("GET", "/api/health/ready", nil).wantError(t, 503, CodeQueueUnavailable)
	if !strings.Contains(string(rd.Raw), `"down":["redis"]`) {
		t.Fatalf("ready: %s", rd.Raw)
	}
	h.do("GET", "/api/v1/recordings/"+recID, nil).must(t, 200)
	// With the queue back, the same idempotency key creates the run: the failed
	// attempt did not keep it.
	up := newHarness(t)
	up.user, up.token = h.user, h.token
	up.do("POST", "/api/v1/runs", map[string]any{"recordingId": recID}, withHeader(HeaderIdempotencyKey, "k1")).must(t, 201)
}

// TestDatabaseUnavailable points the API at a PostgreSQL port nobody serves.
func TestDatabaseUnavailable(t *testing.T) {
	t.Parallel()
	cfg, err := pgx.ParseConfig("postgres://root@" + closedPort(t) + "/none?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	db := bun.NewDB(stdlib.OpenDB(*cfg), pgdialect.New())
	t.Cleanup(func() { _ = db.Close() })
	h := newHarness(t, func(c *Config) { c.DB = db })
	for _, rq := range [][2]string{{"GET", "/api/v1/runs"}, {"POST", "/api/v1/runs"}, {"GET", "/api/v1/recordings"}} {
		r := h.do(rq[0], rq[1], nil).wantError(t, 503, CodeDatabaseUnavailable)
		if strings.Contains(string(r.Raw), "dial") || strings.Contains(string(r.Raw), "127.0.0.1") {
			t.Fatalf("driver internals leaked: %s", r.Raw)
		}
	}
	rd := h.do("GET", "/api/health/ready", nil).wantError(t, 503, CodeDatabaseUnavailable)
	if !strings.Contains(string(rd.Raw), `"down":["postgres"]`) {
		t.Fatalf("ready: %s", rd.Raw)
	}
	h.do("GET", "/api/health/live", nil).must(t, 200)
	det := h.do("GET", "/api/health/detailed", nil).must(t, 200).data()
	if det["status"] != "degraded" {
		t.Fatalf("detailed: %v", det)
	}
	if !strings.Contains(h.logs.String(), "level=ERROR") {
		t.Fatal("the cause is not logged")
	}
}
