package http

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Rate-limit response headers.
const (
	HeaderRateLimitLimit     = "X-RateLimit-Limit"
	HeaderRateLimitRemaining = "X-RateLimit-Remaining"
	HeaderRateLimitReset     = "X-RateLimit-Reset"
)

const (
	rateWindow = time.Minute
	// rateLimitTimeout bounds the Redis round trip; past it the request is
	// counted in this process instead.
	rateLimitTimeout = 500 * time.Millisecond
	// rateLimitBackoff is how long the limiter stays off after Redis failed,
	// so that an outage costs one slow request per interval, not every one.
	rateLimitBackoff = 5 * time.Second
)

// rateLimitToken counts the request against its token's budget for the
// current minute in Redis, shared by every API node (a fixed window per
// token: a counter whose key names the minute). Over budget it answers 429
// with Retry-After.
//
// Redis is asked on the request itself for a token's first request of the
// minute on this node and whenever its budget is nearly spent (the last
// quarter, at least 100 requests): there the count is exact across nodes.
// Below that, requests are counted here and sent to Redis as one INCRBY per
// token every rateFlushInterval (or an eighth of the margin, if sooner), by
// whichever request comes next, which learns the total of every node at the
// same time; so a busy token costs a Redis round trip per interval, not per
// request. The count stays exact unless a token makes more than the margin
// of requests across all nodes within one interval.
//
// When Redis cannot be reached the limiter falls back to counting in this
// process (localLimiter) and logs it once per back-off: an outage of Redis
// must not become an outage of the API, nor lift every limit. The price is
// that while Redis is down each API node grants the full budget, so a token
// may make up to the limit times the number of nodes per minute.
func (s *server) rateLimitToken(c *fiber.Ctx, p *principal) error {
	if s.rateLimit < 0 {
		return nil
	}
	now := s.now()
	window := now.Unix() / int64(rateWindow/time.Second)
	reset := time.Unix((window+1)*int64(rateWindow/time.Second), 0)
	limit := int64(s.rateLimit)
	n, shared := int64(0), false
	if s.redis != nil && time.Now().UnixNano() >= s.limiterOffUntil.Load() {
		var err error
		n, err = s.shared.count(c.UserContext(), s, p.TokenID, window, limit)
		if err == nil {
			shared = true
		} else {
			s.limiterOffUntil.Store(time.Now().Add(rateLimitBackoff).UnixNano())
			s.log.Warn("rate limiter cannot reach Redis; counting in this process for a while",
				"requestId", s.requestID(c), "retryIn", rateLimitBackoff, "err", err)
		}
	}
	if !shared {
		n = s.local.incr(p.TokenID, window)
	}
	c.Set(HeaderRateLimitLimit, strconv.FormatInt(limit, 10))
	c.Set(HeaderRateLimitRemaining, strconv.FormatInt(max(0, limit-n), 10))
	c.Set(HeaderRateLimitReset, strconv.FormatInt(reset.Unix(), 10))
	if n <= limit {
		return nil
	}
	retry := int64(reset.Sub(now).Seconds() + 0.999)
	retry = max(1, retry)
	e := newAPIError(fiber.StatusTooManyRequests, CodeRateLimited,
		"rate limit of %d requests per minute exceeded; retry in %d s", limit, retry)
	e.headers = map[string]string{fiber.HeaderRetryAfter: strconv.FormatInt(retry, 10)}
	e.Details = map[string]any{"limit": limit, "retryAfterSeconds": retry}
	return e
}

// rateFlushInterval is how often counts kept here go to Redis.
const rateFlushInterval = 50 * time.Millisecond

// incrWindow adds ARGV[1] to the window's counter and gives it its expiry
// when it is new: one round trip, one expiry per key.
var incrWindow = redis.NewScript(`
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return n`)

// sharedCounts is this node's view of the shared per-token counters of the
// current window: the total in Redis when last asked, and what was granted
// here since and not yet sent.
type sharedCounts struct {
	mu        sync.Mutex
	window    int64
	tokens    map[uuid.UUID]*tokenCount
	lastFlush time.Time
	flushing  bool
}

type tokenCount struct {
	seen    int64 // the counter in Redis, as of the last answer
	pending int64 // granted here, not yet added to Redis
}

// rateMargin is the part of a budget spent with a Redis round trip per
// request.
func rateMargin(limit int64) int64 { return max(limit/4, 100) }

// count counts one request of token and returns the token's count in the
// window (exact, or as this node knows it: see rateLimitToken).
func (sc *sharedCounts) count(ctx context.Context, s *server, token uuid.UUID, window, limit int64) (int64, error) {
	sc.mu.Lock()
	if sc.tokens == nil || sc.window != window {
		// Counts of a past window no longer matter to anyone.
		sc.window, sc.tokens = window, map[uuid.UUID]*tokenCount{}
	}
	tc := sc.tokens[token]
	if tc != nil && tc.seen+tc.pending+1 <= limit-rateMargin(limit) {
		tc.pending++
		n := tc.seen + tc.pending
		var batch map[uuid.UUID]int64
		if !sc.flushing && (time.Since(sc.lastFlush) >= rateFlushInterval || tc.pending >= rateMargin(limit)/8) {
			sc.flushing, sc.lastFlush = true, time.Now()
			batch = map[uuid.UUID]int64{}
			for id, c := range sc.tokens {
				if c.pending > 0 {
					batch[id], c.pending = c.pending, 0
				}
			}
		}
		sc.mu.Unlock()
		if batch != nil {
			sc.flush(ctx, s, window, batch)
		}
		return n, nil
	}
	// First request of the token here this window, or near its limit: ask
	// Redis now, sending what was granted here meanwhile along.
	by := int64(1)
	if tc != nil {
		by += tc.pending
		tc.pending = 0
	}
	sc.mu.Unlock()
	n, err := incrWindow.Run(ctx, s.redis, []string{s.rateKey(token, window)}, by, int(2*rateWindow/time.Second)).Int64()
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if err != nil {
		if tc != nil {
			tc.pending += by - 1 // try to send them again with the next
		}
		return 0, err
	}
	if sc.window == window {
		if cur := sc.tokens[token]; cur != nil {
			cur.seen = max(cur.seen, n)
		} else {
			sc.tokens[token] = &tokenCount{seen: n}
		}
	}
	return n, nil
}

// flush adds batch (requests per token) to the window's counters in one
// pipeline and notes every token's total. A failure puts the counts back
// (they stay counted here) and is logged by the next request that asks
// Redis itself.
func (sc *sharedCounts) flush(ctx context.Context, s *server, window int64, batch map[uuid.UUID]int64) {
	ctx, cancel := context.WithTimeout(ctx, rateLimitTimeout)
	defer cancel()
	pipe := s.redis.Pipeline()
	cmds := make(map[uuid.UUID]*redis.Cmd, len(batch))
	for id, by := range batch {
		cmds[id] = incrWindow.Run(ctx, pipe, []string{s.rateKey(id, window)}, by, int(2*rateWindow/time.Second))
	}
	_, err := pipe.Exec(ctx)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// The script was flushed from Redis: load it and send again.
		_ = incrWindow.Load(ctx, s.redis).Err()
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.flushing = false
	if sc.window != window {
		return
	}
	for id, cmd := range cmds {
		tc := sc.tokens[id]
		if tc == nil {
			continue
		}
		if n, err := cmd.Int64(); err == nil {
			tc.seen = max(tc.seen, n)
		} else {
			tc.pending += batch[id]
		}
	}
}

func (s *server) rateKey(token uuid.UUID, window int64) string {
	return s.prefix + "ratelimit:" + token.String() + ":" + strconv.FormatInt(window, 10)
}

// localLimiter counts requests per token in the current window in this
// process: the limiter of last resort while Redis is unreachable (and the
// only one when the API has no Redis). It keeps one window, so its memory
// is bounded by the tokens active within a minute.
type localLimiter struct {
	mu     sync.Mutex
	window int64
	counts map[uuid.UUID]int64
}

func (l *localLimiter) incr(token uuid.UUID, window int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil || window != l.window {
		l.window, l.counts = window, map[uuid.UUID]int64{}
	}
	l.counts[token]++
	return l.counts[token]
}
