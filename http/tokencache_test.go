package http

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestTokenCache(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 31, 7, 0, 0, 0, time.UTC)
	key := sha256.Sum256([]byte("a"))
	p := &principal{UserID: uuid.New(), TokenID: uuid.New()}

	c := newTokenCache(time.Hour)
	got, gen := c.get(key, now)
	if got != nil {
		t.Fatal("hit in an empty cache")
	}
	c.put(key, p, nil, gen)
	if got, _ := c.get(key, now); got != p {
		t.Fatal("miss after put")
	}
	// Another token's invalidation keeps it; its own drops it.
	c.invalidate(uuid.New())
	if got, _ := c.get(key, now); got != p {
		t.Fatal("dropped by another token's invalidation")
	}
	c.invalidate(p.TokenID)
	if got, _ := c.get(key, now); got != nil {
		t.Fatal("hit after its invalidation")
	}
	// A lookup that began before an invalidation stores nothing.
	_, gen = c.get(key, now)
	c.invalidate(uuid.New())
	c.put(key, p, nil, gen)
	if got, _ := c.get(key, now); got != nil {
		t.Fatal("stored a lookup older than an invalidation")
	}
	// The token's expiry counts by the API's clock.
	exp := now.Add(time.Minute)
	_, gen = c.get(key, now)
	c.put(key, p, &exp, gen)
	if got, _ := c.get(key, now.Add(59*time.Second)); got != p {
		t.Fatal("miss before the token expires")
	}
	if got, _ := c.get(key, exp); got != nil {
		t.Fatal("hit at the token's expiry")
	}
	// The TTL counts by the real clock.
	short := newTokenCache(time.Nanosecond)
	_, gen = short.get(key, now)
	short.put(key, p, nil, gen)
	time.Sleep(time.Millisecond)
	if got, _ := short.get(key, now); got != nil {
		t.Fatal("hit past the TTL")
	}
	c.invalidateAll()
	if len(c.m) != 0 {
		t.Fatal("invalidateAll kept entries")
	}
}
