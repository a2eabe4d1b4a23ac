package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saveaction/runner/artifacts"
	"github.com/saveaction/runner/browser"
	"github.com/saveaction/runner/persistence"
)

// flakyStore fails the first failures Puts of every key, then stores in a folder.
type flakyStore struct {
	*artifacts.Folder
	failures int
	puts     atomic.Int32
	seen     map[string]int
}

func (s *flakyStore) Put(ctx context.Context, key string, r io.Reader, size int64, ct string) (artifacts.Info, error) {
	s.puts.Add(1)
	s.seen[key]++
	if s.seen[key] <= s.failures {
		return artifacts.Info{}, errors.New("no space left on device")
	}
	return s.Folder.Put(ctx, key, r, size, ct)
}

func TestWithArtifactsUploadsRetriesAndRecordsFailures(t *testing.T) {
	for _, c := range []struct {
		name       string
		failures   int
		wantStatus string
		wantPuts   int32
	}{
		{"stored at once", 0, persistence.ArtifactStored, 2},
		{"stored on the third try", 2, persistence.ArtifactStored, 6},
		{"failed after three tries", 5, persistence.ArtifactFailed, 6},
	} {
		t.Run(c.name, func(t *testing.T) {
			folder, err := artifacts.NewFolder(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			store := &flakyStore{Folder: folder, failures: c.failures, seen: map[string]int{}}
			d := &Deps{Artifacts: store, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Worker: "w"}
			disk := t.TempDir()
			shot, video := filepath.Join(disk, "run-chromium-001-act_1.png"), filepath.Join(disk, "run.mp4")
			for _, p := range []string{shot, video} {
				if err := os.WriteFile(p, []byte("data"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			run := &persistence.Run{ID: uuid.New(), Attempt: 1}
			res := &browser.Result{Video: video, Screenshots: []string{shot},
				Actions: []browser.ActionResult{{ActionID: "act_1", Index: 0, ScreenshotPath: shot, CompletedAt: time.Now()}}}
			o := d.withArtifacts(run, res, persistence.Outcome{Status: persistence.StatusPassed, VideoPath: video,
				Screenshots: []string{shot}, CompletedAt: time.Now()})

			if store.puts.Load() != c.wantPuts {
				t.Fatalf("%d puts, want %d", store.puts.Load(), c.wantPuts)
			}
			if o.Status != persistence.StatusPassed || len(o.Artifacts) != 2 {
				t.Fatalf("outcome %+v", o)
			}
			for _, a := range o.Artifacts {
				if a.Status != c.wantStatus {
					t.Fatalf("artifact %+v, want %s", a, c.wantStatus)
				}
			}
			id := run.ID.String()
			switch c.wantStatus {
			case persistence.ArtifactStored:
				if o.VideoPath != artifacts.VideoKey(id, "mp4") || len(o.Screenshots) != 1 ||
					o.Screenshots[0] != artifacts.ScreenshotKey(id, "run-chromium-001-act_1.png") || len(o.ArtifactWarnings) != 0 {
					t.Fatalf("keys: %q %q, warnings %q", o.VideoPath, o.Screenshots, o.ArtifactWarnings)
				}
			default:
				if o.VideoPath != "" || len(o.Screenshots) != 0 || len(o.ArtifactWarnings) != 2 ||
					!strings.Contains(o.ArtifactWarnings[0], "no space left on device") || o.Artifacts[0].Error == "" {
					t.Fatalf("failed upload: %q %q, warnings %q", o.VideoPath, o.Screenshots, o.ArtifactWarnings)
				}
			}
			// The worker's copies are gone either way.
			for _, p := range []string{shot, video} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Fatalf("%s kept: %v", p, err)
				}
			}
		})
	}
}

func TestWithArtifactsRecordsAVideoThatWasNeverMade(t *testing.T) {
	d := &Deps{Artifacts: &flakyStore{seen: map[string]int{}}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	o := d.withArtifacts(&persistence.Run{ID: uuid.New()}, &browser.Result{VideoError: "video failed: disk full"},
		persistence.Outcome{Status: persistence.StatusFailed, CompletedAt: time.Now()})
	if o.Status != persistence.StatusFailed || len(o.Artifacts) != 1 || o.Artifacts[0].Status != persistence.ArtifactFailed ||
		o.Artifacts[0].Error != "video failed: disk full" || len(o.ArtifactWarnings) != 1 {
		t.Fatalf("outcome %+v", o)
	}
}
