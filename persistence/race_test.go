package persistence_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/persistence/pgtest"
)

// Every pair of lifecycle transitions that can race is raced for real on
// PostgreSQL: exactly one wins, the other finds the run changed (ErrStale).
func TestRacingTransitionsHaveOneWinner(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.New(t)
	ctx := context.Background()
	runs := &persistence.Runs{DB: db}
	owner := persistence.Owner{Worker: "w1"}
	other := persistence.Owner{Worker: "w2"}
	pairs := []struct {
		name string
		prep func(t *testing.T, r *persistence.Run) int // returns the attempt both sides use
		a, b func(r *persistence.Run, attempt int) error
		// final statuses allowed when a or b won
		ifA, ifB persistence.Status
	}{
		{
			name: "5 finish vs 7 cancel-orphan",
			prep: func(t *testing.T, r *persistence.Run) int {
				s, err := runs.Start(ctx, r.ID, 0, owner, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.NewUpdate().Model((*persistence.Run)(nil)).Set("cancel_requested_at = now()").Where("id = ?", r.ID).Exec(ctx); err != nil {
					t.Fatal(err)
				}
				expireLease(t, db, r.ID)
				return s.Attempt
			},
			a: func(r *persistence.Run, at int) error {
				return runs.Finish(ctx, r.ID, at, persistence.Outcome{Status: persistence.StatusPassed, CompletedAt: time.Now()})
			},
			b:   func(r *persistence.Run, at int) error { return runs.CancelOrphan(ctx, r.ID, at) },
			ifA: persistence.StatusPassed, ifB: persistence.StatusCancelled,
		},
		{
			name: "2 start vs 8 cancel-queued",
			prep: func(t *testing.T, r *persistence.Run) int { return 0 },
			a: func(r *persistence.Run, at int) error {
				_, err := runs.Start(ctx, r.ID, at, owner, time.Minute)
				return err
			},
			b:   func(r *persistence.Run, at int) error { return runs.CancelQueued(ctx, r.ID) },
			ifA: persistence.StatusRunning, ifB: persistence.StatusCancelled,
		},
		{
			name: "3 renew vs 4 take-over",
			prep: func(t *testing.T, r *persistence.Run) int {
				s, err := runs.Start(ctx, r.ID, 0, owner, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				expireLease(t, db, r.ID)
				return s.Attempt
			},
			a: func(r *persistence.Run, at int) error {
				_, err := runs.RenewLease(ctx, r.ID, at, time.Minute)
				return err
			},
			b: func(r *persistence.Run, at int) error {
				_, err := runs.TakeOver(ctx, r.ID, at, other, time.Minute)
				return err
			},
			ifA: persistence.StatusRunning, ifB: persistence.StatusRunning,
		},
		{
			name: "6 cancel vs 9 hand-back",
			prep: func(t *testing.T, r *persistence.Run) int {
				s, err := runs.Start(ctx, r.ID, 0, owner, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				return s.Attempt
			},
			a: func(r *persistence.Run, at int) error {
				return runs.Finish(ctx, r.ID, at, persistence.Outcome{Status: persistence.StatusCancelled, CompletedAt: time.Now()})
			},
			b:   func(r *persistence.Run, at int) error { return runs.HandBack(ctx, r.ID, at) },
			ifA: persistence.StatusCancelled, ifB: persistence.StatusQueued,
		},
	}
	for _, p := range pairs {
		for i := 0; i < 15; i++ {
			run := seedRun(t, db, 2)
			at := p.prep(t, run)
			var wg sync.WaitGroup
			var errA, errB error
			start := make(chan struct{})
			wg.Add(2)
			go func() { defer wg.Done(); <-start; errA = p.a(run, at) }()
			go func() { defer wg.Done(); <-start; errB = p.b(run, at) }()
			close(start)
			wg.Wait()
			for _, err := range []error{errA, errB} {
				if err != nil && !errors.Is(err, persistence.ErrStale) {
					t.Fatalf("%s: %v", p.name, err)
				}
			}
			if (errA == nil) == (errB == nil) {
				t.Fatalf("%s: a=%v b=%v, want exactly one winner", p.name, errA, errB)
			}
			got, err := runs.Get(ctx, run.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := p.ifA
			if errB == nil {
				want = p.ifB
			}
			if got.Status != want {
				t.Fatalf("%s: final status %s, want %s", p.name, got.Status, want)
			}
			if persistence.IsTerminal(got.Status) {
				if s := actionStatuses(t, db, run.ID); s[0] == persistence.ActionPending || s[1] == persistence.ActionPending {
					t.Fatalf("%s: finished with rows %v", p.name, s)
				}
			}
		}
	}
}
