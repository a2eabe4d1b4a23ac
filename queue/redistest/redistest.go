// Package redistest gives each test a Redis client and a key prefix of its
// own, its keys removed when the test ends, so packages can run their tests
// in parallel against one server.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

// URL is the server tests use; TEST_REDIS_URL overrides the default.
func URL() string {
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// Options are the client options of URL.
func Options(t testing.TB) *redis.Options {
	t.Helper()
	opt, err := redis.ParseURL(URL())
	if err != nil {
		t.Fatalf("TEST_REDIS_URL: %v", err)
	}
	return opt
}

// New returns a client of the test server and a fresh key prefix under
// name ("test:<name>:<random>:"); every key under the prefix is deleted and
// the client closed when t ends.
func New(t testing.TB, name string) (*redis.Client, string) {
	t.Helper()
	rdb := redis.NewClient(Options(t))
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	prefix := "test:" + name + ":" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}
