package http

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

func TestRateLimit(t *testing.T) {
	t.Parallel()
	// 20 s into a minute: 40 s until the window resets.
	now := time.Date(2026, 1, 31, 7, 17, 20, 0, time.UTC)
	clock := func() time.Time { return now }
	h := newHarness(t, func(c *Config) { c.RateLimitPerMinute = 3; c.Now = clock })
	// A second API node on the same Redis shares the budget.
	cfg2 := h.cfg
	cfg2.Registry = prometheus.NewRegistry()
	node2, err := New(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	h2 := *h
	h2.app = node2

	for i, hh := range []*harness{h, &h2, h} {
		r := hh.do("GET", "/api/v1/runs", nil).must(t, 200)
		if got := r.Header.Get(HeaderRateLimitRemaining); got != strconv.Itoa(2-i) {
			t.Fatalf("request %d: remaining %q", i, got)
		}
		if r.Header.Get(HeaderRateLimitLimit) != "3" {
			t.Fatalf("limit header %q", r.Header.Get(HeaderRateLimitLimit))
		}
		if r.Header.Get(HeaderRateLimitReset) != strconv.FormatInt(now.Truncate(time.Minute).Add(time.Minute).Unix(), 10) {
			t.Fatalf("reset header %q", r.Header.Get(HeaderRateLimitReset))
		}
	}
	r := h2.do("GET", "/api/v1/runs", nil).wantError(t, 429, CodeRateLimited)
	if r.Header.Get("Retry-After") != "40" || r.Header.Get(HeaderRateLimitRemaining) != "0" {
		t.Fatalf("429 headers: %v", r.Header)
	}
	// Health, metrics and the document are not limited, and carry no limit headers.
	for _, p := range []string{"/api/health", "/api/health/live", "/api/health/ready", "/metrics", "/api/openapi.json"} {
		r := h.do("GET", p, nil).must(t, 200)
		if r.Header.Get(HeaderRateLimitLimit) != "" {
			t.Fatalf("%s is rate limited", p)
		}
	}
	// Another token of the same user has its own budget.
	other := newToken(t, testDB(), h.user.ID, []string{"runs:read"})
	h.do("GET", "/api/v1/runs", nil, withToken(other)).must(t, 200)
	// The next minute starts afresh.
	later := *h
	cfg3 := h.cfg
	cfg3.Registry = prometheus.NewRegistry()
	cfg3.Now = func() time.Time { return now.Add(time.Minute) }
	if later.app, err = New(cfg3); err != nil {
		t.Fatal(err)
	}
	later.do("GET", "/api/v1/runs", nil).must(t, 200)
}

// TestRateLimitFallsBackToLocalCounting: with Redis down the API keeps
// answering and keeps limiting, counting in the process.
func TestRateLimitFallsBackToLocalCounting(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 31, 7, 17, 50, 0, time.UTC) // 10 s before the window resets
	down := downRedis(t)
	h := newHarness(t, func(c *Config) { c.Redis = down; c.RateLimitPerMinute = 2; c.Now = func() time.Time { return now } })
	for i := range 2 {
		r := h.do("GET", "/api/v1/runs", nil).must(t, 200)
		if got := r.Header.Get(HeaderRateLimitRemaining); got != strconv.Itoa(1-i) {
			t.Fatalf("request %d: remaining %q", i, got)
		}
	}
	r := h.do("GET", "/api/v1/runs", nil).wantError(t, 429, CodeRateLimited)
	if r.Header.Get("Retry-After") != "10" {
		t.Fatalf("429 headers: %v", r.Header)
	}
	// Another token has its own budget.
	other := newToken(t, testDB(), h.user.ID, []string{"runs:read"})
	h.do("GET", "/api/v1/runs", nil, withToken(other)).must(t, 200)
	logs := h.logs.String()
	if !containsAll(logs, "rate limiter cannot reach Redis", "requestId=") {
		t.Fatalf("the fallback is not logged:\n%s", logs)
	}
	// After one failure the limiter backs off instead of paying the timeout on every request.
	if n := strings.Count(logs, "rate limiter cannot reach Redis"); n != 1 {
		t.Fatalf("logged %d times, want once", n)
	}
}

// TestRateLimitBatchedAcrossApps spends a large budget through two apps
// (two API nodes) sharing Redis, fast enough that most requests are counted
// locally and sent in batches: together they still grant exactly the limit.
func TestRateLimitBatchedAcrossApps(t *testing.T) {
	t.Parallel()
	const limit = 1000
	now := time.Date(2026, 1, 31, 7, 17, 20, 0, time.UTC) // one window for the whole test
	h := newHarness(t, func(c *Config) { c.RateLimitPerMinute = limit; c.Now = func() time.Time { return now } })
	cfg2 := h.cfg
	cfg2.Registry = prometheus.NewRegistry()
	app2, err := New(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	h2 := *h
	h2.app = app2
	ok, limited := 0, 0
	for i := range limit + 50 {
		hh := h
		if i%3 == 0 {
			hh = &h2
		}
		switch st := hh.do("GET", "/api/v1/runs/"+uuid.NewString(), nil).Status; st {
		case 404:
			ok++
		case 429:
			limited++
		default:
			t.Fatalf("request %d: %d", i, st)
		}
	}
	if ok != limit || limited != 50 {
		t.Fatalf("granted %d, refused %d; limit %d", ok, limited, limit)
	}
}
