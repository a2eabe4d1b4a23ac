package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
)

// A survivor takes a dead consumer's pending entries at once, without
// waiting for them to idle; a second survivor finds nothing left, and the
// live consumer's entries are never touched.
func TestClaimFromTakesOnlyTheDeadConsumersEntries(t *testing.T) {
	t.Parallel()
	q, _ := newQueue(t)
	ctx := context.Background()
	dead1, dead2, live := uuid.New(), uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{dead1, dead2} {
		if _, err := q.Enqueue(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := q.Pull(ctx, "dead", 2, 100*time.Millisecond); err != nil || len(got) != 2 {
		t.Fatalf("pull by dead = %+v, %v", got, err)
	}
	if _, err := q.Enqueue(ctx, live); err != nil {
		t.Fatal(err)
	}
	if got, err := q.Pull(ctx, "live", 1, 100*time.Millisecond); err != nil || len(got) != 1 {
		t.Fatalf("pull by live = %+v, %v", got, err)
	}

	tests := []struct {
		name, from, to string
		count          int
		want           []uuid.UUID
	}{
		{"first survivor takes both", "dead", "s1", 5, []uuid.UUID{dead1, dead2}},
		{"second survivor finds none", "dead", "s2", 5, nil},
		{"a consumer never claims from itself", "live", "live", 5, nil},
		{"no free slot, no claim", "s1", "s2", 0, nil},
	}
	for _, tc := range tests {
		got, err := q.ClaimFrom(ctx, tc.from, tc.to, tc.count)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%s: got %+v, want runs %v", tc.name, got, tc.want)
		}
		for i := range got {
			if got[i].RunID != tc.want[i] {
				t.Fatalf("%s: entry %d is run %s, want %s", tc.name, i, got[i].RunID, tc.want[i])
			}
		}
	}
	// Claimed entries now belong to s1: s1 can renew them.
	e, _ := q.ClaimFrom(ctx, "s1", "s3", 1)
	if len(e) != 1 {
		t.Fatalf("s1's entries are not pending for it: %+v", e)
	}
}
