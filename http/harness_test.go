package http

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue"
	"github.com/saveaction/runner/queue/redistest"
	"github.com/uptrace/bun"
)

const (
	pgServer = "postgres://root@127.0.0.1:5432/%s?sslmode=disable"
)

// The database of this test package is made on first use (fuzz workers
// never need one) and dropped by TestMain: every test works as a user of
// its own, so tests share it and run in parallel.
var shared struct {
	once sync.Once
	dsn  string
	db   *bun.DB
	err  error
}

// testDB() returns the package's migrated test database.
func testDB() *bun.DB {
	shared.once.Do(func() {
		ctx := context.Background()
		shared.dsn = fmt.Sprintf(pgServer, "sa_test_http_"+randomHex(6))
		if shared.err = persistence.EnsureDatabase(ctx, shared.dsn); shared.err != nil {
			return
		}
		if shared.db, shared.err = persistence.Open(ctx, shared.dsn); shared.err != nil {
			return
		}
		shared.err = persistence.MigrateUp(ctx, shared.db, io.Discard)
	})
	if shared.err != nil {
		panic(fmt.Sprintf("test database: %v", shared.err))
	}
	return shared.db
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dsn != "" {
		if shared.db != nil {
			_ = shared.db.Close()
		}
		if err := persistence.DropDatabase(context.Background(), shared.dsn); err != nil {
			fmt.Fprintln(os.Stderr, "drop test database:", err)
		}
	}
	os.Exit(code)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// harness is one test's API: its own user, token, Redis key prefix and app.
type harness struct {
	t        testing.TB
	app      *fiber.App
	cfg      Config
	rdb      *redis.Client
	queue    *queue.Queue
	user     *persistence.User
	token    string
	registry *prometheus.Registry
	logs     *syncBuffer
}

type harnessOption func(*Config)

// newHarness builds an app on the shared database and the real Redis, with
// a user holding an all-scopes token.
func newHarness(t testing.TB, opts ...harnessOption) *harness {
	t.Helper()
	rdb := redis.NewClient(redistest.Options(t))
	prefix := "sa_test_http_" + randomHex(6) + ":"
	t.Cleanup(func() { cleanRedis(t, rdb, prefix); _ = rdb.Close() })
	q := queue.New(rdb, prefix)
	logs := &syncBuffer{}
	h := &harness{t: t, rdb: rdb, queue: q, registry: prometheus.NewRegistry(), logs: logs}
	h.cfg = Config{
		DB: testDB(), Dispatcher: q, Redis: rdb, RedisPrefix: prefix,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registry: h.registry, Version: "test", RateLimitPerMinute: 10000,
	}
	for _, o := range opts {
		o(&h.cfg)
	}
	app, err := New(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.app = app
	h.user, h.token = newUser(t, testDB(), persistence.AllScopes)
	return h
}

// newUser makes a user with a token of the given scopes.
func newUser(t testing.TB, db bun.IDB, scopes []string) (*persistence.User, string) {
	t.Helper()
	ctx := context.Background()
	u, err := persistence.EnsureUser(ctx, db, "u-"+randomHex(6)+"@example.com", "Test User")
	if err != nil {
		t.Fatal(err)
	}
	return u, newToken(t, db, u.ID, scopes)
}

func newToken(t testing.TB, db bun.IDB, userID uuid.UUID, scopes []string) string {
	t.Helper()
	plain, _, err := persistence.CreateToken(context.Background(), db, userID, "test", scopes, nil)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

func cleanRedis(t testing.TB, rdb *redis.Client, prefix string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		_ = rdb.Del(ctx, keys...).Err()
	}
}

// syncBuffer collects the logs of concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// resp is a decoded answer.
type resp struct {
	Status int
	Header nethttp.Header
	Raw    []byte
	Body   map[string]any
}

// data returns the "data" member of a success answer.
func (r resp) data() map[string]any {
	d, _ := r.Body["data"].(map[string]any)
	return d
}

func (r resp) list() []any {
	d, _ := r.Body["data"].([]any)
	return d
}

func (r resp) errCode() string {
	e, _ := r.Body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r resp) errDetails() any {
	e, _ := r.Body["error"].(map[string]any)
	return e["details"]
}

// problemPaths lists the paths of a VALIDATION_ERROR's details.
func (r resp) problemPaths() []string {
	ds, _ := r.errDetails().([]any)
	var out []string
	for _, d := range ds {
		m, _ := d.(map[string]any)
		p, _ := m["path"].(string)
		out = append(out, p)
	}
	return out
}

type reqOpt func(*nethttp.Request)

func withHeader(k, v string) reqOpt { return func(r *nethttp.Request) { r.Header.Set(k, v) } }

func withToken(tok string) reqOpt { return withHeader("Authorization", "Bearer "+tok) }

func noAuth() reqOpt { return func(r *nethttp.Request) { r.Header.Del("Authorization") } }

// do sends a request with the harness token; body is sent as is when it is
// a string or []byte and as JSON otherwise.
func (h *harness) do(method, path string, body any, opts ...reqOpt) resp {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	for _, o := range opts {
		o(req)
	}
	res, err := h.app.Test(req, int((30 * time.Second).Milliseconds()))
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	r := resp{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if strings.Contains(res.Header.Get("Content-Type"), "json") && len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.Body); err != nil {
			h.t.Fatalf("%s %s: answer is not a JSON object: %v: %s", method, path, err, raw)
		}
	}
	return r
}

// must checks the status of an answer.
func (r resp) must(t testing.TB, status int) resp {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	return r
}

// wantError checks an error answer: status, code and the error shape.
func (r resp) wantError(t testing.TB, status int, code string) resp {
	t.Helper()
	if r.Status != status || r.errCode() != code {
		t.Fatalf("got %d %s, want %d %s: %s", r.Status, r.errCode(), status, code, r.Raw)
	}
	checkErrorShape(t, r)
	return r
}

// checkErrorShape checks the one error shape and the request id.
func checkErrorShape(t testing.TB, r resp) {
	t.Helper()
	if s, ok := r.Body["success"].(bool); !ok || s {
		t.Fatalf("success is not false: %s", r.Raw)
	}
	e, ok := r.Body["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object: %s", r.Raw)
	}
	for _, k := range []string{"code", "message", "requestId"} {
		if s, _ := e[k].(string); s == "" {
			t.Fatalf("error.%s missing: %s", k, r.Raw)
		}
	}
	if e["requestId"] != r.Header.Get(HeaderRequestID) {
		t.Fatalf("requestId %v differs from X-Request-ID %q", e["requestId"], r.Header.Get(HeaderRequestID))
	}
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtureWithID returns the login fixture under another recorder id, so
// that one user can upload it more than once.
func fixtureWithID(t testing.TB, id string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readFixture(t, "login.json"), &m); err != nil {
		t.Fatal(err)
	}
	m["id"] = id
	b, _ := json.Marshal(m)
	return b
}

// uploadRecording uploads the login fixture and returns its id.
func (h *harness) uploadRecording() string {
	h.t.Helper()
	r := h.do("POST", "/api/v1/recordings", fixtureWithID(h.t, "rec_"+randomHex(4))).must(h.t, 201)
	return r.data()["id"].(string)
}

// createRun queues a run of recording id.
func (h *harness) createRun(recID string, extra map[string]any) map[string]any {
	h.t.Helper()
	body := map[string]any{"recordingId": recID}
	for k, v := range extra {
		body[k] = v
	}
	return h.do("POST", "/api/v1/runs", body).must(h.t, 201).data()
}

// serve runs the app on a loopback listener, for what app.Test cannot show
// (fasthttp's own answers, such as 413), and returns its base URL.
func (h *harness) serve() string {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.app.Listener(ln) }()
	h.t.Cleanup(func() {
		if err := h.app.ShutdownWithTimeout(5 * time.Second); err != nil {
			h.t.Error(err)
		}
		<-done
	})
	return "http://" + ln.Addr().String()
}

// doNet sends a request over the network to base.
func (h *harness) doNet(base, method, path string, body []byte, opts ...reqOpt) resp {
	h.t.Helper()
	req, err := nethttp.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+h.token)
	for _, o := range opts {
		o(req)
	}
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.Body); err != nil {
			h.t.Fatalf("not JSON: %s", raw)
		}
	}
	return r
}

// client is an HTTP client for served apps.
func (h *harness) client() *nethttp.Client { return &nethttp.Client{Timeout: 30 * time.Second} }
