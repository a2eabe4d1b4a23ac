package http

import (
	"bytes"
	"context"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/saveaction/runner/artifacts"
	"github.com/saveaction/runner/persistence"
)

// artifactRun makes a run of the harness user with a stored video and a
// screenshot in store, and returns its id and the video's bytes.
func artifactRunFixture(t testing.TB, h *harness, store artifacts.Store) (string, []byte) {
	t.Helper()
	return artifactRunOfSize(t, h, store, 64<<10)
}

func artifactRunOfSize(t testing.TB, h *harness, store artifacts.Store, size int) (string, []byte) {
	t.Helper()
	run := h.createRun(h.uploadRecording(), map[string]any{"options": map[string]any{"video": true, "screenshot": true}})
	id := run["id"].(string)
	video := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	ctx := context.Background()
	if _, err := store.Put(ctx, artifacts.VideoKey(id, "mp4"), bytes.NewReader(video), int64(len(video)), ""); err != nil {
		t.Fatal(err)
	}
	shot := artifacts.ScreenshotKey(id, "shot-001.png")
	if _, err := store.Put(ctx, shot, strings.NewReader("\x89PNG fake"), 9, "image/png"); err != nil {
		t.Fatal(err)
	}
	zero := 0
	arts := []persistence.Artifact{
		{Kind: persistence.ArtifactScreenshot, Key: shot, Name: "shot-001.png", ActionID: "act_001", ActionIndex: &zero,
			ContentType: "image/png", Size: 9, TakenAt: time.Now().UTC(), Status: persistence.ArtifactStored},
		{Kind: persistence.ArtifactVideo, Key: artifacts.VideoKey(id, "mp4"), Name: "video.mp4", ContentType: "video/mp4",
			Size: int64(len(video)), TakenAt: time.Now().UTC(), Status: persistence.ArtifactStored},
	}
	if err := (&persistence.Runs{DB: testDB()}).MarkArtifacts(ctx, uuid.MustParse(id), arts, nil); err != nil {
		t.Fatal(err)
	}
	return id, video
}

func TestArtifactVideoRanges(t *testing.T) {
	t.Parallel()
	store, err := artifacts.NewFolder(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *Config) { c.Artifacts = store })
	id, video := artifactRunFixture(t, h, store)
	size := len(video)
	path := "/api/v1/runs/" + id + "/video"

	for _, c := range []struct {
		name, rng    string
		status       int
		from, to     int // inclusive slice of video expected
		contentRange string
	}{
		{"whole file", "", 200, 0, size - 1, ""},
		{"first bytes", "bytes=0-99", 206, 0, 99, fmt.Sprintf("bytes 0-99/%d", size)},
		{"middle slice", "bytes=30000-30999", 206, 30000, 30999, fmt.Sprintf("bytes 30000-30999/%d", size)},
		{"open end", fmt.Sprintf("bytes=%d-", size-10), 206, size - 10, size - 1, fmt.Sprintf("bytes %d-%d/%d", size-10, size-1, size)},
		{"suffix", "bytes=-500", 206, size - 500, size - 1, fmt.Sprintf("bytes %d-%d/%d", size-500, size-1, size)},
		{"end past the size is clipped", fmt.Sprintf("bytes=%d-%d", size-5, size+100), 206, size - 5, size - 1, fmt.Sprintf("bytes %d-%d/%d", size-5, size-1, size)},
		{"several ranges: whole file", "bytes=0-1,5-6", 200, 0, size - 1, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var opts []reqOpt
			if c.rng != "" {
				opts = append(opts, withHeader("Range", c.rng))
			}
			r := h.do("GET", path, nil, opts...).must(t, c.status)
			if !bytes.Equal(r.Raw, video[c.from:c.to+1]) {
				t.Fatalf("body of %d bytes, want bytes %d-%d", len(r.Raw), c.from, c.to)
			}
			if got := r.Header.Get("Content-Range"); got != c.contentRange {
				t.Fatalf("Content-Range %q, want %q", got, c.contentRange)
			}
			if r.Header.Get("Content-Type") != "video/mp4" || r.Header.Get("Accept-Ranges") != "bytes" ||
				r.Header.Get("ETag") == "" || r.Header.Get("Last-Modified") == "" {
				t.Fatalf("headers %v", r.Header)
			}
		})
	}
	t.Run("beyond the end is 416", func(t *testing.T) {
		r := h.do("GET", path, nil, withHeader("Range", fmt.Sprintf("bytes=%d-", size))).wantError(t, 416, CodeRangeNotSatisfiable)
		if got := r.Header.Get("Content-Range"); got != fmt.Sprintf("bytes */%d", size) {
			t.Fatalf("Content-Range %q", got)
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		r := h.do("HEAD", path, nil).must(t, 200)
		if len(r.Raw) != 0 || r.Header.Get("Content-Length") != fmt.Sprint(size) {
			t.Fatalf("HEAD: %d body bytes, Content-Length %q", len(r.Raw), r.Header.Get("Content-Length"))
		}
	})
	t.Run("If-None-Match", func(t *testing.T) {
		etag := h.do("HEAD", path, nil).Header.Get("ETag")
		h.do("GET", path, nil, withHeader("If-None-Match", etag)).must(t, 304)
	})
	t.Run("another user's run is 404", func(t *testing.T) {
		_, other := newUser(t, testDB(), persistence.AllScopes)
		h.do("GET", path, nil, withToken(other)).wantError(t, 404, CodeRunNotFound)
		h.do("GET", "/api/v1/runs/"+id+"/screenshots", nil, withToken(other)).wantError(t, 404, CodeRunNotFound)
	})
	t.Run("no token is 401", func(t *testing.T) {
		h.do("GET", path, nil, noAuth()).wantError(t, 401, CodeUnauthorized)
	})
}

func TestArtifactScreenshotsAndRunView(t *testing.T) {
	t.Parallel()
	store, err := artifacts.NewFolder(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *Config) { c.Artifacts = store })
	id, _ := artifactRunFixture(t, h, store)

	run := h.do("GET", "/api/v1/runs/"+id, nil).must(t, 200).data()
	if run["videoUrl"] != "/api/v1/runs/"+id+"/video" {
		t.Fatalf("videoUrl %v", run["videoUrl"])
	}
	if shots, _ := run["screenshots"].([]any); len(shots) != 1 || shots[0] != "/api/v1/runs/"+id+"/screenshots/shot-001.png" {
		t.Fatalf("screenshots %v", run["screenshots"])
	}
	list := h.do("GET", "/api/v1/runs/"+id+"/screenshots", nil).must(t, 200).list()
	if len(list) != 1 {
		t.Fatalf("list %v", list)
	}
	item := list[0].(map[string]any)
	if item["name"] != "shot-001.png" || item["actionId"] != "act_001" || item["actionIndex"] != float64(0) ||
		item["contentType"] != "image/png" || item["size"] != float64(9) || item["url"] != "/api/v1/runs/"+id+"/screenshots/shot-001.png" {
		t.Fatalf("item %v", item)
	}
	r := h.do("GET", item["url"].(string), nil).must(t, 200)
	if string(r.Raw) != "\x89PNG fake" || r.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("screenshot %q %v", r.Raw, r.Header)
	}
	h.do("GET", "/api/v1/runs/"+id+"/screenshots/nope.png", nil).wantError(t, 404, CodeArtifactNotFound)

	// Retention removed them: 410 with when.
	ctx := context.Background()
	runs := &persistence.Runs{DB: testDB()}
	full, err := runs.Get(ctx, uuid.MustParse(id))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := range full.Artifacts {
		full.Artifacts[i].Status, full.Artifacts[i].ExpiredAt = persistence.ArtifactExpired, &now
	}
	if err := runs.MarkArtifacts(ctx, full.ID, full.Artifacts, &now); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/video", "/screenshots", "/screenshots/shot-001.png"} {
		r := h.do("GET", "/api/v1/runs/"+id+p, nil).wantError(t, 410, CodeArtifactExpired)
		if d, _ := r.errDetails().(map[string]any); d["expiredAt"] == nil {
			t.Fatalf("%s: no expiredAt: %s", p, r.Raw)
		}
	}
}

func TestArtifactLinks(t *testing.T) {
	t.Parallel()
	store, err := artifacts.NewFolder(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	var now = func() time.Time { return clock }
	h := newHarness(t, func(c *Config) { c.Artifacts = store; c.ArtifactLinkSecret = []byte("test secret"); c.Now = now })
	id, video := artifactRunFixture(t, h, store)

	links := h.do("POST", "/api/v1/runs/"+id+"/artifact-links", map[string]any{"expiresIn": 60}).must(t, 200).data()
	raw, _ := links["video"].(string)
	if raw == "" || strings.Contains(raw, h.token) {
		t.Fatalf("links %v", links)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	signed := u.RequestURI()
	r := h.do("GET", signed, nil, noAuth(), withHeader("Range", "bytes=0-9")).must(t, 206)
	if !bytes.Equal(r.Raw, video[:10]) {
		t.Fatalf("signed range %q", r.Raw)
	}
	shots, _ := links["screenshots"].([]any)
	if len(shots) != 1 {
		t.Fatalf("screenshot links %v", links)
	}
	su, _ := url.Parse(shots[0].(map[string]any)["url"].(string))
	h.do("GET", su.RequestURI(), nil, noAuth()).must(t, 200)

	for name, p := range map[string]string{
		"tampered signature":      strings.Replace(signed, "signature=", "signature=x", 1),
		"another run's path":      strings.Replace(signed, id, uuid.NewString(), 1),
		"a later expiry":          strings.Replace(signed, "expires=", "expires=9", 1),
		"screenshot with video's": strings.Replace(signed, "/video", "/screenshots/shot-001.png", 1),
	} {
		t.Run(name, func(t *testing.T) { h.do("GET", p, nil, noAuth()).wantError(t, 401, CodeUnauthorized) })
	}
	h.do("POST", "/api/v1/runs/"+id+"/artifact-links", map[string]any{"expiresIn": 0}).wantError(t, 400, CodeValidation)
	_, other := newUser(t, testDB(), persistence.AllScopes)
	h.do("POST", "/api/v1/runs/"+id+"/artifact-links", nil, withToken(other)).wantError(t, 404, CodeRunNotFound)

	clock = clock.Add(2 * time.Minute)
	h.do("GET", signed, nil, noAuth()).wantError(t, 401, CodeUnauthorized)
}

func TestParseRange(t *testing.T) {
	t.Parallel()
	const size = 1000
	for _, c := range []struct {
		h             string
		start, length int64
		ok, bad       bool
	}{
		{"bytes=0-0", 0, 1, true, false},
		{"bytes=0-", 0, 1000, true, false},
		{"bytes=10-19", 10, 10, true, false},
		{"bytes=-1", 999, 1, true, false},
		{"bytes=-5000", 0, 1000, true, false},
		{"bytes=990-5000", 990, 10, true, false},
		{"bytes=1000-", 0, 0, false, true},
		{"bytes=-0", 0, 0, false, true},
		{"bytes=5-4", 0, 0, false, false},
		{"items=0-1", 0, 0, false, false},
		{"bytes=0-1,3-4", 0, 0, false, false},
		{"bytes=abc", 0, 0, false, false},
	} {
		r, ok, err := parseRange(c.h, size)
		if ok != c.ok || (err != nil) != c.bad || (ok && (r.start != c.start || r.length != c.length)) {
			t.Errorf("parseRange(%q) = %+v, %v, %v", c.h, r, ok, err)
		}
	}
}

// BenchmarkServeVideo measures the bytes per second GET /runs/:id/video
// serves over loopback from each store, and the time to the first byte
// of a Range request: go test -run '^$' -bench ServeVideo ./http/
func BenchmarkServeVideo(b *testing.B) {
	folder, err := artifacts.NewFolder(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(s3mem.New(), gofakes3.WithAutoBucket(true)).Server())
	defer srv.Close()
	s3, err := artifacts.NewS3(artifacts.S3Config{URL: "s3://bench/p", Endpoint: srv.URL, Region: "us-east-1", AccessKey: "k", SecretKey: "s", PathStyle: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := s3.EnsureBucket(context.Background(), "us-east-1"); err != nil {
		b.Fatal(err)
	}
	for _, store := range []artifacts.Store{folder, s3} {
		h := newHarness(b, func(c *Config) { c.Artifacts = store })
		id, video := artifactRunOfSize(b, h, store, 16<<20)
		base := h.serve()
		get := func(rng string) (time.Duration, int64) {
			req, _ := nethttp.NewRequest("GET", base+"/api/v1/runs/"+id+"/video", nil)
			req.Header.Set("Authorization", "Bearer "+h.token)
			if rng != "" {
				req.Header.Set("Range", rng)
			}
			start := time.Now()
			res, err := h.client().Do(req)
			if err != nil {
				b.Fatal(err)
			}
			ttfb := time.Since(start)
			n, _ := io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return ttfb, n
		}
		b.Run(store.Kind()+"/whole", func(b *testing.B) {
			b.SetBytes(int64(len(video)))
			for b.Loop() {
				if _, n := get(""); n != int64(len(video)) {
					b.Fatalf("%d bytes", n)
				}
			}
		})
		b.Run(store.Kind()+"/range-ttfb", func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				ttfb, n := get(fmt.Sprintf("bytes=%d-%d", len(video)/2, len(video)/2+65535))
				if n != 65536 {
					b.Fatalf("%d bytes", n)
				}
				total += ttfb
			}
			b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms-ttfb")
		})
	}
}
