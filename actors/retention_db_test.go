package actors_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saveaction/runner/actors"
	"github.com/saveaction/runner/artifacts"
	"github.com/saveaction/runner/persistence"
)

// A retention pass removes the files of runs finished before the cut-off
// and old orphans, records what expired on each run, leaves everything
// else, removes nothing when dry, and runs on one node at a time.
func TestRetentionExpiresOldRunsAndOrphansOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	dir := t.TempDir()
	store, err := artifacts.NewFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	put := func(key string, age time.Duration) {
		t.Helper()
		if _, err := store.Put(ctx, key, strings.NewReader("0123456789"), 10, ""); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-age)
		if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(key)), at, at); err != nil {
			t.Fatal(err)
		}
	}
	finished := func(age time.Duration) uuid.UUID {
		t.Helper()
		id := e.createRun(e.recording(1, 10), "instant", nil)
		key := artifacts.VideoKey(id.String(), "mp4")
		put(key, age)
		arts := []persistence.Artifact{{Kind: persistence.ArtifactVideo, Key: key, Name: "video.mp4", ContentType: "video/mp4",
			Size: 10, TakenAt: time.Now().UTC(), Status: persistence.ArtifactStored}}
		if err := e.runs.MarkArtifacts(ctx, id, arts, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.NewUpdate().Model((*persistence.Run)(nil)).Set("status = 'passed'").
			Set("completed_at = ?", time.Now().Add(-age)).Where("id = ?", id).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		return id
	}
	old, recent := finished(48*time.Hour), finished(time.Minute)
	oldOrphan := artifacts.ScreenshotKey(uuid.NewString(), "x.png")
	newOrphan := artifacts.ScreenshotKey(uuid.NewString(), "y.png")
	put(oldOrphan, 2*time.Hour)
	put(newOrphan, time.Minute) // its run may be being created right now

	r := &actors.Retention{Runs: e.runs, Store: store, Redis: e.rdb, LockKey: e.prefix + "retention:lock", Owner: "node-a",
		MaxAge: 24 * time.Hour, Log: e.log}
	want := []string{artifacts.VideoKey(old.String(), "mp4"), oldOrphan}
	slices.Sort(want)

	dry, err := r.Once(ctx, 24*time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(dry.Keys)
	if !slices.Equal(dry.Keys, want) || dry.Runs != 1 || dry.Orphans != 1 || dry.Bytes != 20 {
		t.Fatalf("dry run = %+v, want %v", dry, want)
	}
	if _, err := store.Stat(ctx, oldOrphan); err != nil {
		t.Fatalf("a dry run removed a file: %v", err)
	}

	// Another node holds the lock: this one skips.
	if err := e.rdb.Set(ctx, e.prefix+"retention:lock", "node-b", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if rep, err := r.Once(ctx, 24*time.Hour, false); err != nil || !rep.Skipped {
		t.Fatalf("pass while node-b holds the lock = %+v, %v; want skipped", rep, err)
	}
	e.rdb.Del(ctx, e.prefix+"retention:lock")

	rep, err := r.Once(ctx, 24*time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(rep.Keys)
	if !slices.Equal(rep.Keys, want) || rep.Files != 2 || rep.Failed != 0 {
		t.Fatalf("pass = %+v, want %v", rep, want)
	}
	for _, k := range want {
		if _, err := store.Stat(ctx, k); err == nil {
			t.Errorf("%s is still there", k)
		}
	}
	for _, k := range []string{artifacts.VideoKey(recent.String(), "mp4"), newOrphan} {
		if _, err := store.Stat(ctx, k); err != nil {
			t.Errorf("%s was removed: %v", k, err)
		}
	}
	run, err := e.runs.Get(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if run.ArtifactsExpiredAt == nil || run.Artifacts[0].Status != persistence.ArtifactExpired || run.Artifacts[0].ExpiredAt == nil {
		t.Fatalf("the old run does not record what expired: %+v, %+v", run.ArtifactsExpiredAt, run.Artifacts)
	}
	if n, _ := e.rdb.Exists(ctx, e.prefix+"retention:lock").Result(); n != 0 {
		t.Fatal("the lock outlived the pass")
	}
	// A second pass finds nothing: the run's record says it is done.
	if rep, err := r.Once(ctx, 24*time.Hour, false); err != nil || rep.Files != 0 || rep.Runs != 0 {
		t.Fatalf("second pass = %+v, %v; want nothing", rep, err)
	}
}
