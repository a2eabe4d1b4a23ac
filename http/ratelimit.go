package http

import (
	"context"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Rate-limit response headers.
const (
	HeaderRateLimitLimit     = "X-RateLimit-Limit"
	HeaderRateLimitRemaining = "X-RateLimit-Remaining"
	HeaderRateLimitReset     = "X-RateLimit-Reset"
)

const (
	rateWindow = time.Minute
	// rateLimitTimeout bounds the Redis round trip; past it the request
	// goes through (fail open).
	rateLimitTimeout = 500 * time.Millisecond
	// rateLimitBackoff is how long the limiter stays off after Redis failed,
	// so that an outage costs one slow request per interval, not every one.
	rateLimitBackoff = 5 * time.Second
)

// rateLimitToken counts the request against its token's budget for the
// current minute in Redis, shared by every API node (a fixed window per
// token: INCR of a key that names the minute). Over budget it answers 429
// with Retry-After. When Redis cannot be reached the request is allowed and
// the failure logged: an outage of the limiter must not become an outage of
// the API.
func (s *server) rateLimitToken(c *fiber.Ctx, p *principal) error {
	if s.rateLimit < 0 || s.redis == nil {
		return nil
	}
	if time.Now().UnixNano() < s.limiterOffUntil.Load() {
		return nil
	}
	now := s.now()
	window := now.Unix() / int64(rateWindow/time.Second)
	reset := time.Unix((window+1)*int64(rateWindow/time.Second), 0)
	key := s.prefix + "ratelimit:" + p.TokenID.String() + ":" + strconv.FormatInt(window, 10)

	ctx, cancel := context.WithTimeout(c.UserContext(), rateLimitTimeout)
	defer cancel()
	pipe := s.redis.Pipeline()
	incr := pipe.Incr(ctx, key)
	pipe.Expire(ctx, key, 2*rateWindow)
	if _, err := pipe.Exec(ctx); err != nil {
		s.limiterOffUntil.Store(time.Now().Add(rateLimitBackoff).UnixNano())
		s.log.Warn("rate limiter unavailable; requests allowed unlimited for a while",
			"requestId", s.requestID(c), "retryIn", rateLimitBackoff, "err", err)
		return nil
	}
	n := incr.Val()
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
