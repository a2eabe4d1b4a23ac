package http

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/saveaction/runner/persistence"
)

// fakeOwners plays a running run's owner for GET /runs/:id/live.
type fakeOwners struct {
	st  OwnerStatus
	err error
}

func (f *fakeOwners) RunStatus(ctx context.Context, run *persistence.Run, timeout time.Duration) (OwnerStatus, error) {
	if timeout != LiveWait {
		return OwnerStatus{}, errors.New("unexpected timeout")
	}
	return f.st, f.err
}

func TestLiveRun(t *testing.T) {
	t.Parallel()
	started := time.Now().Add(-3 * time.Second).UTC()
	owners := &fakeOwners{st: OwnerStatus{Attempt: 1, Worker: "worker-test", Phase: "replaying", ActionsTotal: 3,
		ActionsDone: 1, CurrentAction: &LiveAction{Index: 1, ID: "act_2", Type: "click"}, StartedAt: started}}
	h := newHarness(t, func(c *Config) { c.Owners = owners })
	id := h.createRun(h.uploadRecording(), nil)["id"].(string)

	// Queued: from the database, the owner not asked.
	got := h.do("GET", "/api/v1/runs/"+id+"/live", nil).must(t, 200).data()
	if got["source"] != "database" || got["status"] != "queued" || got["phase"] != nil || got["currentAction"] != nil {
		t.Fatalf("queued run: %v", got)
	}
	startRun(t, id)
	got = h.do("GET", "/api/v1/runs/"+id+"/live", nil).must(t, 200).data()
	cur, _ := got["currentAction"].(map[string]any)
	if got["source"] != "owner" || got["status"] != "running" || got["phase"] != "replaying" || got["worker"] != "worker-test" ||
		got["actionsDone"] != float64(1) || cur["id"] != "act_2" || cur["index"] != float64(1) || got["elapsedMs"].(float64) < 3000 {
		t.Fatalf("running run, owner answering: %v", got)
	}
	// The owner silent: still 200, from the database.
	owners.err = errors.New("future: timeout")
	got = h.do("GET", "/api/v1/runs/"+id+"/live", nil).must(t, 200).data()
	if got["source"] != "database" || got["status"] != "running" || got["worker"] != "worker-test" || got["attempt"] != float64(1) ||
		got["actionsDone"] != float64(0) || got["phase"] != nil {
		t.Fatalf("running run, owner silent: %v", got)
	}
	// Another user's run is not found; a bad id is a validation error.
	newHarness(t).do("GET", "/api/v1/runs/"+id+"/live", nil).wantError(t, 404, CodeRunNotFound)
	h.do("GET", "/api/v1/runs/nope/live", nil).wantError(t, 400, CodeValidation)
}
