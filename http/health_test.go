package http

import (
	"bufio"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

func TestHealth(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	d := h.do("GET", "/api/health", nil, noAuth()).must(t, 200).data()
	if d["status"] != "ok" || d["version"] != "test" || d["timestamp"] == nil {
		t.Fatalf("health: %v", d)
	}
	if d := h.do("GET", "/api/health/live", nil, noAuth()).must(t, 200).data(); d["status"] != "alive" {
		t.Fatalf("live: %v", d)
	}
	if d := h.do("GET", "/api/health/ready", nil, noAuth()).must(t, 200).data(); d["status"] != "ready" {
		t.Fatalf("ready: %v", d)
	}
	det := h.do("GET", "/api/health/detailed", nil, noAuth()).must(t, 200).data()
	checks := det["checks"].(map[string]any)
	if det["status"] != "ok" || checks["postgres"].(map[string]any)["status"] != "up" || checks["redis"].(map[string]any)["status"] != "up" {
		t.Fatalf("detailed: %v", det)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.createRun(h.uploadRecording(), nil)["id"].(string)
	h.do("GET", "/api/v1/runs/"+id, nil).must(t, 200)
	h.do("GET", "/api/v1/runs/"+id, nil).must(t, 200)
	h.do("GET", "/api/v1/no/such/"+id, nil).must(t, 404)
	h.do("GET", "/api/v1/runs/"+id, nil, noAuth()).must(t, 401)
	r := h.do("GET", "/metrics", nil, noAuth()).must(t, 200)
	text := string(r.Raw)
	for _, want := range []string{
		`http_requests_total{method="GET",route="/api/v1/runs/:id",status="200"} 2`,
		`http_requests_total{method="GET",route="/api/v1/runs/:id",status="401"} 1`,
		`http_requests_total{method="POST",route="/api/v1/runs",status="201"} 1`,
		`http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`http_request_duration_seconds_bucket{method="GET",route="/api/v1/runs/:id",le=`,
		`http_request_duration_seconds_count{method="POST",route="/api/v1/recordings"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, id) {
		t.Error("a raw path became a label")
	}
}

// TestStreamingPassesThrough: the observing middleware must not read or
// buffer response bodies, or server-sent events would stall.
func TestStreamingPassesThrough(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	release := make(chan struct{})
	h.app.Get("/test/stream", func(c *fiber.Ctx) error {
		c.Set("Content-Type", "text/event-stream")
		c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
			_, _ = w.WriteString("data: first\n\n")
			_ = w.Flush()
			<-release
			_, _ = w.WriteString("data: second\n\n")
			_ = w.Flush()
		})
		return nil
	})
	base := h.serve()
	res, err := h.client().Get(base + "/test/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	rd := bufio.NewReader(res.Body)
	line, err := rd.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event not delivered before the stream ended: %q %v", line, err)
	}
	close(release)
	if _, err := rd.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if line, _ := rd.ReadString('\n'); line != "data: second\n" {
		t.Fatalf("second event: %q", line)
	}
}
