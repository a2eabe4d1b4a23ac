package http

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/saveaction/runner/persistence"
)

// LiveWait bounds how long GET /runs/:id/live waits for a running run's
// owner before it answers from PostgreSQL.
const LiveWait = time.Second

// Live sources: the run's owner answered, or the database did.
const (
	LiveFromOwner    = "owner"
	LiveFromDatabase = "database"
)

// OwnerStatus is what the owner of a running run says its current attempt
// is doing.
type OwnerStatus struct {
	Attempt       int
	Worker        string
	Phase         string // starting, replaying, finishing
	ActionsTotal  int
	ActionsDone   int
	CurrentAction *LiveAction
	StartedAt     time.Time
}

// RunOwners reaches the owner of a running run (through the cluster, or at
// the actor address stored on the run). RunStatus answers within timeout;
// an error means no owner answered for the run's current attempt.
type RunOwners interface {
	RunStatus(ctx context.Context, run *persistence.Run, timeout time.Duration) (OwnerStatus, error)
}

// LiveAction is the action an owner is replaying now.
type LiveAction struct {
	Index int    `json:"index"`
	ID    string `json:"id"`
	Type  string `json:"type"`
}

// LiveRun is the answer of GET /runs/:id/live.
type LiveRun struct {
	RunID   string `json:"runId"`
	Status  string `json:"status"`
	Attempt int    `json:"attempt"`
	Worker  string `json:"worker"`
	// Source is "owner" (the run's actor answered) or "database".
	Source        string      `json:"source"`
	Phase         *string     `json:"phase"` // owner only
	ActionsTotal  int         `json:"actionsTotal"`
	ActionsDone   int         `json:"actionsDone"`
	CurrentAction *LiveAction `json:"currentAction"`
	StartedAt     *time.Time  `json:"startedAt"`
	ElapsedMs     *int64      `json:"elapsedMs"`
	// Note says, for an answer from the database, why the owner was not
	// asked or did not answer.
	Note string `json:"note,omitempty"`
}

// liveRun answers GET /api/v1/runs/:id/live: for a running run what its
// owner says it is doing now (asked for at most LiveWait), else, or when
// the owner does not answer, what PostgreSQL knows.
func (s *server) liveRun(c *fiber.Ctx) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	run, err := persistence.GetUserRun(ctx, s.db, principalOf(c).UserID, id)
	if err != nil {
		return err
	}
	note := "the run is not running"
	if run.Status == persistence.StatusRunning {
		note = "no owner to ask on this node"
		if s.owners != nil {
			st, err := s.owners.RunStatus(ctx, run, LiveWait)
			if err == nil {
				return respond(c, fiber.StatusOK, ownerView(run, st, s.now()))
			}
			note = "the owner did not answer: " + err.Error()
		}
	}
	return respond(c, fiber.StatusOK, s.databaseView(ctx, run, note))
}

func ownerView(run *persistence.Run, st OwnerStatus, now time.Time) LiveRun {
	v := LiveRun{RunID: run.ID.String(), Status: string(run.Status), Attempt: st.Attempt, Worker: st.Worker,
		Source: LiveFromOwner, ActionsTotal: st.ActionsTotal, ActionsDone: st.ActionsDone, CurrentAction: st.CurrentAction}
	phase := st.Phase
	v.Phase = &phase
	if !st.StartedAt.IsZero() {
		at := st.StartedAt.UTC()
		el := max(now.Sub(at).Milliseconds(), 0)
		v.StartedAt, v.ElapsedMs = &at, &el
	}
	return v
}

// databaseView is the run as its rows say: counts of the current
// attempt's written rows (of all rows once the run is final). A failed
// count falls back to the run's own counters: never a 500 for the rows.
func (s *server) databaseView(ctx context.Context, run *persistence.Run, note string) LiveRun {
	v := LiveRun{RunID: run.ID.String(), Status: string(run.Status), Attempt: run.Attempt, Worker: run.WorkerNode,
		Source: LiveFromDatabase, ActionsTotal: run.ActionsTotal, ActionsDone: run.ActionsExecuted, Note: note}
	q := s.db.NewSelect().Table("run_actions").Where("run_id = ?", run.ID).Where("status <> 'pending'")
	if !persistence.IsTerminal(run.Status) {
		q = q.Where("attempt = ?", run.Attempt)
	}
	if n, err := q.Count(ctx); err == nil {
		v.ActionsDone = int(n)
	}
	if run.StartedAt != nil {
		at := run.StartedAt.UTC()
		end := s.now()
		if run.CompletedAt != nil {
			end = *run.CompletedAt
		}
		el := max(end.Sub(at).Milliseconds(), 0)
		v.StartedAt, v.ElapsedMs = &at, &el
	}
	return v
}
