package actors

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/saveaction/runner/artifacts"
	"github.com/saveaction/runner/browser"
	"github.com/saveaction/runner/persistence"
)

// Uploads of a run's artifacts.
const (
	// uploadAttempts is how often one artifact is tried before the run
	// records it as failed.
	uploadAttempts = 3
	// uploadTimeout bounds one try of one artifact.
	uploadTimeout = 2 * time.Minute
)

// uploadBackoff is the pause before the second and third try.
var uploadBackoff = []time.Duration{250 * time.Millisecond, time.Second}

// withArtifacts uploads the attempt's video and screenshots to the
// artifact store and returns o carrying their keys instead of the worker's
// paths. It runs after the replay and before the run is settled, while the
// lease keeper still renews. An upload that keeps failing never loses the
// result: the artifact is recorded as failed with the reason, and the run
// ends with its real status. With no store configured o is kept as it is.
func (d *Deps) withArtifacts(run *persistence.Run, res *browser.Result, o persistence.Outcome) persistence.Outcome {
	if d.Artifacts == nil {
		return o
	}
	id := run.ID.String()
	log := d.runLog(id, run.JobID, "attempt", run.Attempt)
	arts := []persistence.Artifact{}
	var warnings, shots []string
	upload := func(a persistence.Artifact, path string) persistence.Artifact {
		start := time.Now()
		info, err := d.putWithRetries(a.Key, path, a.ContentType)
		if err != nil {
			a.Status, a.Error = persistence.ArtifactFailed, err.Error()
			warnings = append(warnings, fmt.Sprintf("%s %s not stored: %v", a.Kind, a.Name, err))
			log.Warn("artifact not stored", "key", a.Key, "error", err)
		} else {
			a.Status, a.Size = persistence.ArtifactStored, info.Size
			log.Info("artifact stored", "key", a.Key, "bytes", info.Size, "ms", time.Since(start).Milliseconds(), "store", d.Artifacts.Kind())
		}
		// The store has the file now, or the run records why not: either
		// way the worker's copy has served its purpose.
		_ = os.Remove(path)
		return a
	}
	for i := range res.Actions {
		r := &res.Actions[i]
		if r.ScreenshotPath == "" {
			continue
		}
		name := filepath.Base(r.ScreenshotPath)
		index := r.Index
		taken := r.CompletedAt
		if taken.IsZero() {
			taken = time.Now()
		}
		a := upload(persistence.Artifact{Kind: persistence.ArtifactScreenshot, Key: artifacts.ScreenshotKey(id, name),
			Name: name, ActionID: r.ActionID, ActionIndex: &index, ContentType: artifacts.ContentTypeOf(name),
			TakenAt: taken.UTC()}, r.ScreenshotPath)
		arts = append(arts, a)
		if a.Status == persistence.ArtifactStored {
			shots = append(shots, a.Key)
		}
	}
	o.VideoPath = ""
	switch {
	case res.Video != "":
		ext := strings.TrimPrefix(filepath.Ext(res.Video), ".")
		key := artifacts.VideoKey(id, ext)
		a := upload(persistence.Artifact{Kind: persistence.ArtifactVideo, Key: key, Name: "video." + ext,
			ContentType: artifacts.ContentTypeOf(key), TakenAt: o.CompletedAt.UTC()}, res.Video)
		arts = append(arts, a)
		if a.Status == persistence.ArtifactStored {
			o.VideoPath = a.Key
		}
	case res.VideoError != "":
		arts = append(arts, persistence.Artifact{Kind: persistence.ArtifactVideo, Name: "video",
			Status: persistence.ArtifactFailed, Error: res.VideoError, TakenAt: o.CompletedAt.UTC()})
		warnings = append(warnings, res.VideoError)
	}
	for i := range o.Rows {
		o.Rows[i].ScreenshotPath = nil // pointed at the key by Finish
	}
	o.Screenshots = shots
	o.Artifacts, o.ArtifactWarnings = arts, warnings
	return o
}

// putWithRetries uploads the file at path, trying uploadAttempts times.
func (d *Deps) putWithRetries(key, path, contentType string) (artifacts.Info, error) {
	var err error
	for try := range uploadAttempts {
		if try > 0 {
			t := time.NewTimer(uploadBackoff[min(try-1, len(uploadBackoff)-1)])
			<-t.C
		}
		ctx, cancel := context.WithTimeout(context.Background(), uploadTimeout)
		var info artifacts.Info
		info, err = artifacts.PutFile(ctx, d.Artifacts, key, path, contentType)
		cancel()
		if err == nil {
			return info, nil
		}
		if os.IsNotExist(err) {
			break // nothing to retry: the file is gone
		}
	}
	return artifacts.Info{}, err
}
