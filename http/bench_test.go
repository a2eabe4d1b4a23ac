package http

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/saveaction/runner/persistence"
	"github.com/uptrace/bun"
)

// The benchmarks go through the whole app (auth, rate limit in Redis,
// handlers, PostgreSQL) with app.Test. Run: go test -run XXX -bench . ./http/

func benchDo(b *testing.B, h *harness, method, path, body string, status int) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Authorization", "Bearer "+h.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := h.app.Test(req, -1)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	if res.StatusCode != status {
		b.Fatalf("%s %s: %d", method, path, res.StatusCode)
	}
}

func benchHarness(b *testing.B, db *bun.DB) *harness {
	h := newHarness(b, func(c *Config) {
		c.RateLimitPerMinute = 1 << 30 // counted in Redis, never reached
		if db != nil {
			c.DB = db
		}
	})
	if db != nil {
		h.user, h.token = newUser(b, db, persistence.AllScopes)
	}
	return h
}

func BenchmarkGetRun(b *testing.B) {
	h := benchHarness(b, nil)
	path := "/api/v1/runs/" + h.createRun(h.uploadRecording(), nil)["id"].(string)
	b.ResetTimer()
	for b.Loop() {
		benchDo(b, h, "GET", path, "", 200)
	}
}

func BenchmarkCreateRun(b *testing.B) {
	h := benchHarness(b, nil)
	body := fmt.Sprintf(`{"recordingId":%q,"options":{"timeout":10000},"variables":{"LOGIN_PASSWORD":"x"}}`, h.uploadRecording())
	b.ResetTimer()
	for b.Loop() {
		benchDo(b, h, "POST", "/api/v1/runs", body, 201)
	}
}

// BenchmarkListRuns100k lists the newest 20 of 100 000 runs of one user. The
// rows live in a database of the benchmark's own, seeded with one
// INSERT ... SELECT generate_series; the plan of the list query is logged.
func BenchmarkListRuns100k(b *testing.B) {
	db := benchDB(b)
	h := benchHarness(b, db)
	seedRuns(b, db, h, 100_000)
	explainListQuery(b, db, h)
	b.ResetTimer()
	for b.Loop() {
		benchDo(b, h, "GET", "/api/v1/runs?limit=20", "", 200)
	}
}

// benchDB makes a migrated database of the benchmark's own, dropped when b ends.
func benchDB(b *testing.B) *bun.DB {
	ctx := context.Background()
	dsn := fmt.Sprintf(pgServer, "sa_bench_http_"+randomHex(6))
	if err := persistence.EnsureDatabase(ctx, dsn); err != nil {
		b.Fatal(err)
	}
	db, err := persistence.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close(); _ = persistence.DropDatabase(context.Background(), dsn) })
	if err := persistence.MigrateUp(ctx, db, io.Discard); err != nil {
		b.Fatal(err)
	}
	return db
}

// seedRuns gives h's user n runs of one recording, spread over statuses
// and creation times, plus as many of another user so the user filter matters.
func seedRuns(b *testing.B, db bun.IDB, h *harness, n int) {
	ctx := context.Background()
	recID := h.uploadRecording()
	other, _ := newUser(b, db, persistence.AllScopes)
	for _, user := range []string{h.user.ID.String(), other.ID.String()} {
		_, err := db.ExecContext(ctx, `
			INSERT INTO runs (user_id, recording_id, recording_name, recording_url, status, attempt, started_at, completed_at, created_at, updated_at)
			SELECT ?, ?, 'bench', 'https://x/',
				(ARRAY['queued','running','passed','failed','cancelled']::run_status[])[1 + g % 5],
				CASE WHEN g % 5 = 0 THEN 0 ELSE 1 END,
				CASE WHEN g % 5 = 0 THEN NULL ELSE now() - g * interval '1 second' END,
				CASE WHEN g % 5 IN (0, 1) THEN NULL ELSE now() - g * interval '1 second' + interval '500 ms' END,
				now() - g * interval '1 second', now() - g * interval '1 second'
			FROM generate_series(1, ?) AS g`, user, recID, n)
		if err != nil {
			b.Fatal(err)
		}
	}
	// What autovacuum would do soon after such a bulk load: statistics, and
	// a visibility map so that counts can be index-only scans.
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE runs"); err != nil {
		b.Fatal(err)
	}
}

// queryCapture keeps the SQL of the queries the app sends.
type queryCapture struct {
	mu      sync.Mutex
	queries []string
}

func (q *queryCapture) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (q *queryCapture) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queries = append(q.queries, e.Query)
}

// explainListQuery prints (to stderr) EXPLAIN ANALYZE of the exact queries GET /runs sends.
func explainListQuery(b *testing.B, db *bun.DB, h *harness) {
	ctx := context.Background()
	qc := &queryCapture{}
	// An app of its own on a hooked copy of db, so the timed loop runs unhooked.
	hooked := *h
	cfg := h.cfg
	cfg.DB = db.WithQueryHook(qc)
	cfg.Registry = prometheus.NewRegistry()
	app, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	hooked.app = app
	benchDo(b, &hooked, "GET", "/api/v1/runs?limit=20", "", 200)
	benchDo(b, &hooked, "GET", "/api/v1/runs?limit=20&status=failed", "", 200)
	qc.mu.Lock()
	queries := append([]string(nil), qc.queries...)
	qc.mu.Unlock()
	for _, q := range queries {
		if !strings.Contains(q, `FROM "runs"`) {
			continue
		}
		var lines []string
		if err := db.NewRaw("EXPLAIN (ANALYZE, BUFFERS) "+q).Scan(ctx, &lines); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "-- %s\n%s\n\n", q, strings.Join(lines, "\n"))
	}
}
