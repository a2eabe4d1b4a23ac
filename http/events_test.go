package http

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	nethttp "net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saveaction/runner/queue"
	"github.com/saveaction/runner/queue/redistest"
)

// Many subscribers of one run share one hub (one Redis read loop); each
// gets every new event; the hub goes away after its last subscriber.
func TestHubFansOutOneReadToManySubscribers(t *testing.T) {
	t.Parallel()
	rdb, prefix := redistest.New(t, "hub")
	ev := queue.NewEvents(rdb, prefix, nil)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	hs := newHubs(ctx, ev, slog.Default())
	run := uuid.New()
	const n = 200
	subs := make([]*subscriber, n)
	for i := range subs {
		s, err := hs.subscribe(run)
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
	}
	hs.mu.Lock()
	hubsOpen := len(hs.m)
	hs.mu.Unlock()
	if hubsOpen != 1 {
		t.Fatalf("%d hubs for one run, want 1", hubsOpen)
	}
	id, err := ev.PublishNow(ctx, run, queue.RunStarted(1, "w"))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range subs {
		select {
		case got := <-s.ch:
			if got.ID != id || got.Name != queue.EventRunStarted {
				t.Fatalf("subscriber %d got %+v", i, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("subscriber %d got nothing", i)
		}
	}
	for _, s := range subs {
		hs.unsubscribe(s)
	}
	deadline := time.Now().Add(3 * hubBlock)
	for {
		hs.mu.Lock()
		left := len(hs.m)
		hs.mu.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hub outlived its subscribers")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Shutdown ends a hub and closes its subscribers' channels.
	s, err := hs.subscribe(run)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	select {
	case _, ok := <-s.ch:
		if ok {
			t.Fatal("an event after shutdown")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown left the subscriber open")
	}
}

// openStream GETs a run's events and returns a line reader of the body.
func openStream(t *testing.T, base, token, runID, query string) (*bufio.Reader, func()) {
	t.Helper()
	req, _ := nethttp.NewRequest("GET", base+"/api/v1/runs/"+runID+"/events"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return bufio.NewReader(resp.Body), func() { resp.Body.Close() }
}

// readUntil reads lines until one has prefix, within d; it returns the
// lines read.
func readUntil(t *testing.T, r *bufio.Reader, prefix string, d time.Duration) []string {
	t.Helper()
	type res struct {
		lines []string
		err   error
	}
	ch := make(chan res, 1)
	go func() {
		var lines []string
		for {
			l, err := r.ReadString('\n')
			lines = append(lines, strings.TrimRight(l, "\n"))
			if err != nil {
				ch <- res{lines, err}
				return
			}
			if strings.HasPrefix(l, prefix) {
				ch <- res{lines, nil}
				return
			}
		}
	}()
	select {
	case got := <-ch:
		if got.err != nil {
			t.Fatalf("stream ended before %q: %v (read %q)", prefix, got.err, got.lines)
		}
		return got.lines
	case <-time.After(d):
		t.Fatalf("no %q within %s", prefix, d)
	}
	return nil
}

// The stream: run.queued published by the API on create, a heartbeat
// comment when quiet, run.finished when the API cancels the queued run and
// then the end; ?lastEventId= resumes; shutdown ends open streams at once.
func TestRunEventsStream(t *testing.T) {
	t.Parallel()
	life, stop := context.WithCancel(context.Background())
	defer stop()
	h := newHarness(t, func(c *Config) {
		c.Events = queue.NewEvents(c.Redis, c.RedisPrefix, nil)
		c.Heartbeat = 100 * time.Millisecond
		c.Lifetime = life
	})
	base := h.serve()
	run := h.createRun(h.uploadRecording(), nil)["id"].(string)
	r, closeBody := openStream(t, base, h.token, run, "")
	defer closeBody()
	lines := readUntil(t, r, "event: run.queued", 5*time.Second)
	queuedID := strings.TrimPrefix(lines[len(lines)-2], "id: ")
	readUntil(t, r, ": heartbeat", 5*time.Second)
	h.do("POST", "/api/v1/runs/"+run+"/cancel", nil).must(t, 200)
	lines = readUntil(t, r, "data: ", 5*time.Second)
	if !slices.Contains(lines, "event: run.finished") || !strings.Contains(lines[len(lines)-1], `"status":"cancelled"`) {
		t.Fatalf("after cancel: %q", lines)
	}
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err) // the blank line ending the event
	}
	if l, err := r.ReadString('\n'); err != io.EOF {
		t.Fatalf("stream went on after run.finished: %q %v", l, err)
	}
	// Resume after run.queued with the query parameter: run.finished only.
	r2, close2 := openStream(t, base, h.token, run, "?lastEventId="+queuedID)
	defer close2()
	lines = readUntil(t, r2, "event: ", 5*time.Second)
	if lines[len(lines)-1] != "event: run.finished" {
		t.Fatalf("resume after %s: %q", queuedID, lines)
	}

	// Shutdown: an open stream of a live run ends at once.
	run2 := h.createRun(h.uploadRecording(), nil)["id"].(string)
	r3, close3 := openStream(t, base, h.token, run2, "")
	defer close3()
	readUntil(t, r3, "event: run.queued", 5*time.Second)
	stop()
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := r3.ReadString('\n'); err != nil {
				ended <- err
				return
			}
		}
	}()
	select {
	case err := <-ended:
		if err != io.EOF {
			t.Fatalf("stream ended with %v, want a clean end", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an open stream outlived the API's lifetime by 5 s")
	}
}

// The run page and its files are served with a policy that keeps them to
// their own origin.
func TestRunPageIsServed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	base := h.serve()
	for _, c := range []struct{ path, ctype, contains string }{
		{"/", "text/html", `<script src="/ui/app.js"`},
		{"/ui/app.js", "javascript", "Last-Event-ID"},
		{"/ui/app.css", "text/css", "@media"},
	} {
		resp, err := nethttp.Get(base + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), c.ctype) || !strings.Contains(string(body), c.contains) {
			t.Errorf("GET %s: %d %s", c.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", c.path, csp)
		}
	}
}
