package persistence_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/persistence/pgtest"
)

// Finish records the artifacts and points each action row at its
// screenshot's key, replacing the worker's path written during the replay;
// a screenshot that failed to upload leaves the row with none.
func TestFinishRecordsArtifactsAndRepointsRows(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.New(t)
	ctx := context.Background()
	runs := &persistence.Runs{DB: db}
	run := seedRun(t, db, 2)
	if _, err := runs.Start(ctx, run.ID, 0, persistence.Owner{Worker: "w", ActorAddress: "nonhost", ActorID: "a"}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		disk := "/worker/disk/shot-" + string(rune('1'+i)) + ".png"
		row := &persistence.RunAction{ActionIndex: i, ActionID: "act_00" + string(rune('1'+i)), ActionType: "click",
			Status: persistence.ActionSuccess, ScreenshotPath: &disk}
		if err := runs.SaveAction(ctx, run.ID, 1, row); err != nil {
			t.Fatal(err)
		}
	}
	zero, one := 0, 1
	arts := []persistence.Artifact{
		{Kind: persistence.ArtifactScreenshot, Key: "runs/x/screenshots/shot-1.png", Name: "shot-1.png", ActionIndex: &zero, Status: persistence.ArtifactStored},
		{Kind: persistence.ArtifactScreenshot, Key: "runs/x/screenshots/shot-2.png", Name: "shot-2.png", ActionIndex: &one, Status: persistence.ArtifactFailed, Error: "store down"},
	}
	err := runs.Finish(ctx, run.ID, 1, persistence.Outcome{Status: persistence.StatusPassed, CompletedAt: time.Now(),
		Screenshots: []string{"runs/x/screenshots/shot-1.png"}, Artifacts: arts, ArtifactWarnings: []string{"screenshot shot-2.png not stored: store down"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := runs.Get(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Artifacts) != 2 || got.Artifacts[1].Error != "store down" || len(got.ArtifactWarnings) != 1 || got.ArtifactsExpiredAt != nil {
		t.Fatalf("run artifacts %+v, warnings %q", got.Artifacts, got.ArtifactWarnings)
	}
	rows, err := persistence.ListRunActions(ctx, db, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rows[0].ScreenshotPath == nil || *rows[0].ScreenshotPath != "runs/x/screenshots/shot-1.png" || rows[1].ScreenshotPath != nil {
		t.Fatalf("rows point at %v and %v", rows[0].ScreenshotPath, rows[1].ScreenshotPath)
	}

	// Retention's view: listed when finished before the cut-off, and live.
	listed, err := runs.WithArtifactsBefore(ctx, time.Now().Add(time.Minute), persistence.Cursor{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range listed {
		found = found || r.ID == run.ID
	}
	if !found {
		t.Fatal("a finished run with artifacts is not listed for retention")
	}
	live, err := runs.LiveRunIDs(ctx, []uuid.UUID{run.ID, uuid.New()})
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 1 || !live[run.ID] {
		t.Fatalf("live %v", live)
	}
}
