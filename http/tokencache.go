package http

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

const (
	// DefaultTokenCacheTTL is how long an authenticated token is trusted
	// without asking PostgreSQL again: the bound on how long a revoked,
	// deleted or expired token (or one of a deleted user) keeps working on a
	// node that missed the invalidation message.
	DefaultTokenCacheTTL = time.Second
	// tokenCacheMax bounds the cache; past it, it is emptied.
	tokenCacheMax = 10_000
	// tokenInvalidateChannel (after the Redis prefix) carries the id of a
	// token revoked or deleted on any API node.
	tokenInvalidateChannel = "tokens:invalidate"
)

// tokenCache keeps the principals of tokens authenticated in the last TTL,
// so that a request costs no database round trip for its token. A token
// revoked or deleted through the API is dropped at once on the node that
// did it and, through Redis pub/sub, on every other node; the TTL covers a
// message lost while a node was cut off from Redis, and a token that
// expires or whose user is deleted by other means.
type tokenCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[[sha256.Size]byte]tokenEntry
	// gen counts invalidations: a lookup that began before one does not
	// store what it read, which may be the token before its revocation.
	gen uint64
}

type tokenEntry struct {
	p       *principal
	until   time.Time  // by the real clock: fetched + TTL
	expires *time.Time // the token's own expiry, by the API's clock
}

func newTokenCache(ttl time.Duration) *tokenCache {
	return &tokenCache{ttl: ttl, m: map[[sha256.Size]byte]tokenEntry{}}
}

// get returns the cached principal of the token whose hash is key, unless
// its TTL ran out or the token expired at now (the API's clock), and the
// generation to hand to put on a miss.
func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) (*principal, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if ok && time.Now().Before(e.until) && (e.expires == nil || now.Before(*e.expires)) {
		return e.p, c.gen
	}
	if ok {
		delete(c.m, key)
	}
	return nil, c.gen
}

// put stores p for the TTL (and no longer than the token's expiry), unless
// an invalidation happened since gen was read.
func (c *tokenCache) put(key [sha256.Size]byte, p *principal, expires *time.Time, gen uint64) {
	until := time.Now().Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.m) >= tokenCacheMax {
		clear(c.m)
	}
	c.m[key] = tokenEntry{p: p, until: until, expires: expires}
}

// invalidate drops the token id.
func (c *tokenCache) invalidate(id uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k, e := range c.m {
		if e.p.TokenID == id {
			delete(c.m, k)
		}
	}
}

// invalidateAll drops every token (the invalidation channel was lost).
func (c *tokenCache) invalidateAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.m)
}

// tokenChanged drops token id here and tells the other API nodes.
func (s *server) tokenChanged(ctx context.Context, id uuid.UUID) {
	if s.tokens == nil {
		return
	}
	s.tokens.invalidate(id)
	if s.redis == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rateLimitTimeout)
	defer cancel()
	if err := s.redis.Publish(ctx, s.prefix+tokenInvalidateChannel, id.String()).Err(); err != nil {
		// The other nodes stop trusting it within the cache's TTL anyway.
		s.log.Warn("token revocation not published; other API nodes drop it when their cache expires",
			"tokenId", id.String(), "ttl", s.tokens.ttl, "err", err)
	}
}

// followTokenInvalidations applies the other nodes' token invalidations
// until life ends. Each (re)subscription empties the cache, since messages
// sent while the subscription was down are lost; while Redis is down the
// TTL alone bounds how long a revoked token works.
func followTokenInvalidations(life context.Context, rdb redis.UniversalClient, channel string, cache *tokenCache, log *slog.Logger) {
	sub := rdb.Subscribe(life, channel)
	defer func() { _ = sub.Close() }()
	failing := false
	for {
		msg, err := sub.Receive(life)
		if life.Err() != nil {
			return
		}
		if err != nil {
			if !failing {
				log.Warn("token invalidations: subscription lost; cached tokens expire by their TTL meanwhile", "err", err)
				failing = true
			}
			select {
			case <-life.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		failing = false
		switch m := msg.(type) {
		case *redis.Subscription:
			cache.invalidateAll()
		case *redis.Message:
			id, err := uuid.Parse(m.Payload)
			if err != nil {
				log.Warn("token invalidation: not a token id; dropping every cached token", "payload", m.Payload)
				cache.invalidateAll()
				continue
			}
			cache.invalidate(id)
		}
	}
}

// estimateTTL is how long an estimated total of a run list is reused.
const estimateTTL = 5 * time.Second

// estimateCache keeps estimated list totals for estimateTTL.
type estimateCache struct {
	mu sync.Mutex
	m  map[string]estimate
}

type estimate struct {
	n     int
	until time.Time
}

func (c *estimateCache) get(key string, now time.Time) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || !now.Before(e.until) {
		return 0, false
	}
	return e.n, true
}

func (c *estimateCache) put(key string, n int, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= tokenCacheMax {
		c.m = map[string]estimate{}
	}
	c.m[key] = estimate{n: n, until: now.Add(estimateTTL)}
}
