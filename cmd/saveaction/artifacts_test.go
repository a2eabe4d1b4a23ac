package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/saveaction/runner/artifacts"
)

// fakeS3 is an S3 protocol server in the test process, on a loopback
// port, that both the API and the worker processes point at.
func fakeS3(t *testing.T) (endpoint string, env []string, store *artifacts.S3) {
	t.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New(), gofakes3.WithAutoBucket(true)).Server())
	t.Cleanup(srv.Close)
	bucket := "sa-artifacts-" + randHex(3)
	env = []string{"ARTIFACT_STORE=s3://" + bucket + "/fleet", "S3_ENDPOINT=" + srv.URL, "S3_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test-secret", "S3_FORCE_PATH_STYLE=true",
		"ARTIFACT_LINK_SECRET=fleet-link-secret"}
	store, err := artifacts.NewS3(artifacts.S3Config{URL: "s3://" + bucket + "/fleet", Endpoint: srv.URL, Region: "us-east-1",
		AccessKey: "test", SecretKey: "test-secret", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := store.EnsureBucket(ctx, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	return srv.URL, env, store
}

// get fetches path from the API with the fleet token (or none) and headers.
func (f *fleet) get(method, path, token string, headers ...string) (*nethttp.Response, []byte, time.Duration) {
	f.t.Helper()
	req, err := nethttp.NewRequest(method, f.api.base+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	start := time.Now()
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	ttfb := time.Since(start)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		f.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return res, body, ttfb
}

func errorCode(body []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Code
}

type artifactRunView struct {
	Status           string   `json:"status"`
	DurationMs       int64    `json:"durationMs"`
	VideoURL         *string  `json:"videoUrl"`
	Screenshots      []string `json:"screenshots"`
	ArtifactWarnings []string `json:"artifactWarnings"`
}

// TestArtifactsServedByAnAPINodeSharingNoDiskWithTheWorker runs a recorded
// run on a worker whose folders the API never sees; both use an S3 store.
func TestArtifactsServedByAnAPINodeSharingNoDiskWithTheWorker(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed")
	}
	_, s3env, store := fakeS3(t)
	f := newFleet(t, s3env...)
	workerDisk := t.TempDir()
	f.worker("worker-s3", "WORKER_CONCURRENCY=1",
		"VIDEO_STORAGE_PATH="+filepath.Join(workerDisk, "videos"), "SCREENSHOT_STORAGE_PATH="+filepath.Join(workerDisk, "screenshots"))
	const steps = 10 // a second apart: a run of about 10 s
	id := f.createRun(f.slowRecording(steps), map[string]any{"timingMode": "realistic", "timeout": 30000,
		"video": true, "screenshot": true, "screenshotMode": "always"})
	f.waitFor(id, 120*time.Second, "finished", func(r runView) bool { return r.Status != "queued" && r.Status != "running" })
	var run artifactRunView
	f.api.call("GET", "/api/v1/runs/"+id, nil, 200, &run)
	if run.Status != "passed" || len(run.ArtifactWarnings) != 0 {
		t.Fatalf("run %+v", run)
	}
	if run.VideoURL == nil || *run.VideoURL != "/api/v1/runs/"+id+"/video" || len(run.Screenshots) != steps {
		t.Fatalf("artifact URLs: video %v, %d screenshots %v", run.VideoURL, len(run.Screenshots), run.Screenshots)
	}
	for _, s := range run.Screenshots {
		if !strings.HasPrefix(s, "/api/v1/runs/"+id+"/screenshots/") {
			t.Fatalf("screenshot URL %q is not an API URL", s)
		}
	}
	// The worker's copies are gone: the API can only have served the store's.
	if left, _ := filepath.Glob(filepath.Join(workerDisk, "*", "*")); len(left) != 0 {
		t.Fatalf("worker kept files after upload: %v", left)
	}

	// The whole video, then ranges of it.
	res, video, _ := f.get("GET", "/api/v1/runs/"+id+"/video", f.api.token)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "video/") ||
		res.Header.Get("Accept-Ranges") != "bytes" || res.Header.Get("ETag") == "" || res.Header.Get("Last-Modified") == "" {
		t.Fatalf("video: %d %v", res.StatusCode, res.Header)
	}
	size := len(video)
	t.Logf("figure: a %d s run's video (%s) is %d bytes; the run lasted %d ms", steps, res.Header.Get("Content-Type"), size, run.DurationMs)
	for _, c := range []struct {
		name, rng string
		from, to  int
	}{
		{"first bytes", "bytes=0-99", 0, 99},
		{"middle slice", fmt.Sprintf("bytes=%d-%d", size/2, size/2+999), size / 2, size/2 + 999},
		{"suffix", "bytes=-100", size - 100, size - 1},
	} {
		res, part, ttfb := f.get("GET", "/api/v1/runs/"+id+"/video", f.api.token, "Range", c.rng)
		want := fmt.Sprintf("bytes %d-%d/%d", c.from, c.to, size)
		if res.StatusCode != 206 || res.Header.Get("Content-Range") != want || !bytes.Equal(part, video[c.from:c.to+1]) {
			t.Fatalf("%s: %d, Content-Range %q (want %q), %d bytes", c.name, res.StatusCode, res.Header.Get("Content-Range"), want, len(part))
		}
		t.Logf("figure: time to first byte of a Range request (%s, S3 store): %s", c.name, ttfb)
	}
	res, body, _ := f.get("GET", "/api/v1/runs/"+id+"/video", f.api.token, "Range", fmt.Sprintf("bytes=%d-", size))
	if res.StatusCode != 416 || res.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) || errorCode(body) != "RANGE_NOT_SATISFIABLE" {
		t.Fatalf("beyond the end: %d %q %s", res.StatusCode, res.Header.Get("Content-Range"), body)
	}
	res, body, _ = f.get("HEAD", "/api/v1/runs/"+id+"/video", f.api.token)
	if res.StatusCode != 200 || res.Header.Get("Content-Length") != strconv.Itoa(size) || len(body) != 0 {
		t.Fatalf("HEAD: %d, Content-Length %q, %d body bytes", res.StatusCode, res.Header.Get("Content-Length"), len(body))
	}

	// The video decodes and lasts about as long as the run.
	path := filepath.Join(t.TempDir(), "video")
	if err := os.WriteFile(path, video, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	secs, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatalf("ffprobe duration %q: %v", out, err)
	}
	runSecs := float64(run.DurationMs) / 1000
	if secs < runSecs*0.5 || secs > runSecs*1.5+2 {
		t.Fatalf("video lasts %.1f s, the run %.1f s", secs, runSecs)
	}
	t.Logf("video lasts %.1f s for a run of %.1f s", secs, runSecs)

	// Screenshots: the list, then one image.
	var shots []struct {
		ActionID, Name, ContentType, URL string
		Size                             int64
	}
	f.api.call("GET", "/api/v1/runs/"+id+"/screenshots", nil, 200, &shots)
	if len(shots) != steps || shots[0].ActionID != "act_001" || shots[0].ContentType != "image/png" {
		t.Fatalf("screenshots %+v", shots)
	}
	res, png, _ := f.get("GET", shots[0].URL, f.api.token)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/png" || !bytes.HasPrefix(png, []byte("\x89PNG")) || int64(len(png)) != shots[0].Size {
		t.Fatalf("screenshot: %d %v, %d bytes", res.StatusCode, res.Header, len(png))
	}
	t.Logf("figure: a screenshot at the default viewport is %d bytes", len(png))

	// Another user's token sees no such run.
	out, err = f.command("token", "create", "--email", "other@example.com", "--name", "other").Output()
	if err != nil {
		t.Fatal(err)
	}
	other := strings.TrimSpace(string(out))
	for _, p := range []string{"/video", "/screenshots", "/screenshots/" + shots[0].Name} {
		if res, body, _ := f.get("GET", "/api/v1/runs/"+id+p, other); res.StatusCode != 404 || errorCode(body) != "RUN_NOT_FOUND" {
			t.Fatalf("foreign token %s: %d %s", p, res.StatusCode, body)
		}
	}

	// A signed link plays without the Authorization header.
	var links struct {
		Video string `json:"video"`
	}
	f.api.call("POST", "/api/v1/runs/"+id+"/artifact-links", nil, 200, &links)
	if strings.Contains(links.Video, f.api.token) {
		t.Fatal("a token went into a URL")
	}
	lres, err := nethttp.Get(links.Video)
	if err != nil {
		t.Fatal(err)
	}
	lbody, _ := io.ReadAll(lres.Body)
	lres.Body.Close()
	if lres.StatusCode != 200 || !bytes.Equal(lbody, video) {
		t.Fatalf("signed link: %d, %d bytes", lres.StatusCode, len(lbody))
	}

	// Retention now: files gone, the API answers 410 with when.
	out, err = f.command("cleanup", "--older-than", "0s").CombinedOutput()
	if err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "removed runs/"+id+"/video.") || !strings.Contains(string(out), fmt.Sprintf("removed %d files", steps+1)) {
		t.Fatalf("cleanup output:\n%s", out)
	}
	t.Logf("cleanup said: %s", lastLine(string(out)))
	for _, p := range []string{"/video", "/screenshots", "/screenshots/" + shots[0].Name} {
		if res, body, _ := f.get("GET", "/api/v1/runs/"+id+p, f.api.token); res.StatusCode != 410 || errorCode(body) != "ARTIFACT_EXPIRED" || !strings.Contains(string(body), "expiredAt") {
			t.Fatalf("after cleanup %s: %d %s", p, res.StatusCode, body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var left []string
	if err := store.List(ctx, artifacts.RunPrefix(id), func(i artifacts.Info) error { left = append(left, i.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("files left in the bucket after cleanup: %v", left)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestStoreDownRunStillPasses points the fleet at an S3 endpoint where
// nothing listens: the run keeps its real result and says what was lost.
func TestStoreDownRunStillPasses(t *testing.T) {
	f := newFleet(t, "ARTIFACT_STORE=s3://down/prefix", fmt.Sprintf("S3_ENDPOINT=http://127.0.0.1:%d", freePort(t)),
		"S3_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "S3_FORCE_PATH_STYLE=true")
	f.worker("worker-down", "WORKER_CONCURRENCY=1")
	id := f.createRun(f.recordingWithGap(1, 0), map[string]any{"timingMode": "instant", "video": true,
		"screenshot": true, "screenshotMode": "always"})
	f.waitFor(id, 120*time.Second, "finished", func(r runView) bool { return r.Status != "queued" && r.Status != "running" })
	var run artifactRunView
	f.api.call("GET", "/api/v1/runs/"+id, nil, 200, &run)
	if run.Status != "passed" {
		t.Fatalf("run %+v, want passed", run)
	}
	if len(run.ArtifactWarnings) != 2 || run.VideoURL != nil || len(run.Screenshots) != 0 {
		t.Fatalf("want a warning for the video and the screenshot and no URLs: %+v", run)
	}
	t.Logf("warnings: %q", run.ArtifactWarnings)
	res, body, _ := f.get("GET", "/api/v1/runs/"+id+"/video", f.api.token)
	if res.StatusCode != 404 || errorCode(body) != "ARTIFACT_NOT_FOUND" || !strings.Contains(string(body), "reason") {
		t.Fatalf("video of a failed upload: %d %s", res.StatusCode, body)
	}
}

// TestFolderStoreServesVideoAndDeleteRemovesIt runs on the default store,
// a folder (here one the API and the worker share), and deletes the run.
func TestFolderStoreServesVideoAndDeleteRemovesIt(t *testing.T) {
	dir := t.TempDir()
	f := newFleet(t, "ARTIFACT_STORE="+dir)
	f.worker("worker-folder", "WORKER_CONCURRENCY=1")
	id := f.createRun(f.slowRecording(3), map[string]any{"timingMode": "realistic", "timeout": 30000, "video": true})
	f.waitFor(id, 120*time.Second, "finished", func(r runView) bool { return r.Status != "queued" && r.Status != "running" })
	res, video, _ := f.get("GET", "/api/v1/runs/"+id+"/video", f.api.token)
	if res.StatusCode != 200 || len(video) == 0 {
		t.Fatalf("video: %d, %d bytes", res.StatusCode, len(video))
	}
	res, part, ttfb := f.get("GET", "/api/v1/runs/"+id+"/video", f.api.token, "Range", "bytes=-64")
	if res.StatusCode != 206 || !bytes.Equal(part, video[len(video)-64:]) {
		t.Fatalf("suffix range: %d, %d bytes", res.StatusCode, len(part))
	}
	t.Logf("figure: time to first byte of a Range request (folder store): %s", ttfb)
	runDir := filepath.Join(dir, "runs", id)
	if _, err := os.Stat(runDir); err != nil {
		t.Fatalf("the run's folder in the store: %v", err)
	}
	f.api.call("DELETE", "/api/v1/runs/"+id, nil, 200, nil)
	if _, err := os.Stat(runDir); !os.IsNotExist(err) {
		t.Fatalf("DELETE left the run's files: %v", err)
	}
}
