package http

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
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
// token: INCR of a key that names the minute). Over budget it answers 429
// with Retry-After.
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
	n, shared := int64(0), false
	if s.redis != nil && time.Now().UnixNano() >= s.limiterOffUntil.Load() {
		key := s.prefix + "ratelimit:" + p.TokenID.String() + ":" + strconv.FormatInt(window, 10)
		ctx, cancel := context.WithTimeout(c.UserContext(), rateLimitTimeout)
		pipe := s.redis.Pipeline()
		incr := pipe.Incr(ctx, key)
		pipe.Expire(ctx, key, 2*rateWindow)
		_, err := pipe.Exec(ctx)
		cancel()
		if err == nil {
			n, shared = incr.Val(), true
		} else {
			s.limiterOffUntil.Store(time.Now().Add(rateLimitBackoff).UnixNano())
			s.log.Warn("rate limiter cannot reach Redis; counting in this process for a while",
				"requestId", s.requestID(c), "retryIn", rateLimitBackoff, "err", err)
		}
	}
	if !shared {
		n = s.local.incr(p.TokenID, window)
	}
	limit := int64(s.rateLimit)
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
