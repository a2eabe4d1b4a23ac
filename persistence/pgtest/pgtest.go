// Package pgtest gives each test a migrated PostgreSQL database of its own,
// dropped when the test ends, so packages can run their tests in parallel.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/saveaction/runner/persistence"
)

// BaseURL is the server the test databases are made on; TEST_DATABASE_URL
// overrides it (its database name is replaced).
func BaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://root@127.0.0.1:5432/postgres?sslmode=disable"
}

// URL returns the URL of a new, not yet created database named after prefix.
func URL(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	name := prefix + "_" + hex.EncodeToString(b)
	base := BaseURL()
	i := strings.LastIndex(base, "/")
	q := ""
	if j := strings.Index(base[i:], "?"); j >= 0 {
		q = base[i+j:]
	}
	return base[:i+1] + name + q
}

// New creates a migrated database for t and returns it with its URL.
func New(t testing.TB) (*bun.DB, string) {
	t.Helper()
	ctx := context.Background()
	dsn := URL("sa_test")
	if err := persistence.EnsureDatabase(ctx, dsn); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	db, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() {
		_ = db.Close()
		_ = persistence.DropDatabase(context.Background(), dsn)
	})
	if err := persistence.MigrateUp(ctx, db, io.Discard); err != nil {
		t.Fatalf("migrate test database: %v", err)
	}
	return db, dsn
}
