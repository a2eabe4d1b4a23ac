package persistence_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/persistence/pgtest"
)

func newTestRecording(userID uuid.UUID, originalID string) *persistence.Recording {
	return &persistence.Recording{
		UserID: userID, OriginalID: originalID, Name: "n " + originalID, URL: "https://x/",
		Data: []byte(`{"id":"` + originalID + `"}`), Tags: []string{"a"}, Variables: []string{},
	}
}

func TestRecordingDuplicatesAndSoftDelete(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.New(t)
	ctx := context.Background()
	u, err := persistence.EnsureUser(ctx, db, "rec@example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	// Concurrent uploads of one recording: one wins, the rest name it.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	recs := make([]*persistence.Recording, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs[i] = newTestRecording(u.ID, "rec_1")
			errs[i] = persistence.CreateRecording(ctx, db, recs[i])
		}()
	}
	wg.Wait()
	var winner uuid.UUID
	for i, err := range errs {
		if err == nil {
			if winner != uuid.Nil {
				t.Fatal("two uploads won")
			}
			winner = recs[i].ID
		}
	}
	for _, err := range errs {
		var dup *persistence.DuplicateOriginalIDError
		if err != nil && (!errors.As(err, &dup) || dup.ExistingID != winner) {
			t.Fatalf("loser got %v, want a duplicate of %s", err, winner)
		}
	}
	got, err := persistence.GetRecording(ctx, db, u.ID, winner, false)
	if err != nil || got.Data != nil || got.Name != "n rec_1" {
		t.Fatalf("get without data: %+v %v", got, err)
	}
	if _, err := persistence.GetRecording(ctx, db, uuid.New(), winner, true); !errors.Is(err, persistence.ErrRecordingNotFound) {
		t.Fatalf("another user's: %v", err)
	}
	if _, err := persistence.DeleteRecording(ctx, db, u.ID, winner, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := persistence.GetRecording(ctx, db, u.ID, winner, true); !errors.Is(err, persistence.ErrRecordingNotFound) {
		t.Fatalf("deleted: %v", err)
	}
	if _, err := persistence.DeleteRecording(ctx, db, u.ID, winner, time.Now()); !errors.Is(err, persistence.ErrRecordingNotFound) {
		t.Fatalf("deleted twice: %v", err)
	}
	// The recorder id is free again; an update onto a taken one conflicts.
	again := newTestRecording(u.ID, "rec_1")
	if err := persistence.CreateRecording(ctx, db, again); err != nil {
		t.Fatal(err)
	}
	other := newTestRecording(u.ID, "rec_2")
	if err := persistence.CreateRecording(ctx, db, other); err != nil {
		t.Fatal(err)
	}
	other.OriginalID = "rec_1"
	var dup *persistence.DuplicateOriginalIDError
	if err := persistence.UpdateRecording(ctx, db, other, time.Now()); !errors.As(err, &dup) || dup.ExistingID != again.ID {
		t.Fatalf("update onto a taken id: %v", err)
	}
	recsList, total, err := persistence.ListRecordings(ctx, db, persistence.RecordingQuery{UserID: u.ID, Limit: 10, Tags: []string{"a"}})
	if err != nil || total != 2 || len(recsList) != 2 || recsList[0].Data != nil {
		t.Fatalf("list: %d %v", total, err)
	}
	if _, _, err := persistence.ListRecordings(ctx, db, persistence.RecordingQuery{UserID: u.ID, Limit: 10, SortBy: "size"}); err == nil {
		t.Fatal("unknown sort key accepted")
	}
}
