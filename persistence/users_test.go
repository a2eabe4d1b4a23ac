package persistence_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/persistence/pgtest"
)

func TestEnsureUser(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.New(t)
	ctx := context.Background()
	a, err := persistence.EnsureUser(ctx, db, "Alice@Example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	// Same address in another case: the same user; an empty name gets filled.
	b, err := persistence.EnsureUser(ctx, db, "alice@example.com", "Alice")
	if err != nil || b.ID != a.ID || b.Name != "Alice" {
		t.Fatalf("second call: %+v %v", b, err)
	}
	// A set name is not overwritten.
	c, err := persistence.EnsureUser(ctx, db, "ALICE@example.com", "Mallory")
	if err != nil || c.ID != a.ID || c.Name != "Alice" {
		t.Fatalf("third call: %+v %v", c, err)
	}
	// Concurrent first calls converge on one row.
	var wg sync.WaitGroup
	ids := make([]uuid.UUID, 10)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := persistence.EnsureUser(ctx, db, "bob@example.com", "Bob")
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = u.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("several users for one email: %v", ids)
		}
	}
	if _, err := persistence.EnsureUser(ctx, db, "not-an-email", ""); err == nil {
		t.Fatal("accepted an invalid email")
	}
	got, err := persistence.GetUser(ctx, db, a.ID)
	if err != nil || got.Email != "Alice@Example.com" {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := persistence.GetUser(ctx, db, uuid.New()); !errors.Is(err, persistence.ErrUserNotFound) {
		t.Fatalf("missing user: %v", err)
	}
}
