package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/saveaction/runner/persistence"
)

func TestCreateRunDefaultsAndOptions(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	recID := h.uploadRecording()
	run := h.createRun(recID, nil)
	for _, k := range []string{"id", "recordingId", "recordingName", "status", "browser", "headless", "createdAt"} {
		if _, ok := run[k]; !ok {
			t.Errorf("create answer lacks %s: %v", k, run)
		}
	}
	got := h.do("GET", "/api/v1/runs/"+run["id"].(string), nil).must(t, 200).data()
	opts := got["options"].(map[string]any)
	want := map[string]any{
		"browser": "chromium", "headless": true, "timeout": float64(30000), "video": false, "screenshot": false,
		"screenshotMode": "on-failure", "timingEnabled": true, "timingMode": "realistic", "speedMultiplier": float64(1),
		"maxActionDelay": float64(30000), "continueOnError": false, "assertAutoCheckpoints": false, "isolation": "context",
	}
	for k, v := range want {
		if opts[k] != v {
			t.Errorf("default %s = %v, want %v", k, opts[k], v)
		}
	}
	if got["triggeredBy"] != "api" || got["attempt"] != float64(0) || got["retryOf"] != nil || got["ciMetadata"] != nil {
		t.Errorf("run: %v", got)
	}

	custom := h.createRun(recID, map[string]any{
		"options": map[string]any{"headless": false, "timeout": 1000, "video": true, "screenshot": true, "screenshotMode": "always",
			"timingEnabled": false, "timingMode": "instant", "speedMultiplier": 2.5, "continueOnError": true,
			"assertAutoCheckpoints": true, "maxActionDelay": 0, "isolation": "browser", "browser": "chromium"},
		"triggeredBy": "ci",
		"ciMetadata":  map[string]any{"provider": "github", "commit": "abc123", "nested": map[string]any{"pr": 7}},
	})
	if custom["headless"] != false {
		t.Errorf("headless: %v", custom)
	}
	got = h.do("GET", "/api/v1/runs/"+custom["id"].(string), nil).must(t, 200).data()
	opts = got["options"].(map[string]any)
	if opts["timeout"] != float64(1000) || opts["speedMultiplier"] != 2.5 || opts["timingMode"] != "instant" || opts["isolation"] != "browser" {
		t.Errorf("options: %v", opts)
	}
	if got["triggeredBy"] != "ci" || fmt.Sprint(got["ciMetadata"]) != "map[commit:abc123 nested:map[pr:7] provider:github]" {
		t.Errorf("trigger/ci: %v %v", got["triggeredBy"], got["ciMetadata"])
	}
	// The columns follow the options (the worker and the list filters read them).
	var row persistence.Run
	if err := testDB().NewSelect().Model(&row).Where("id = ?", custom["id"]).Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if row.Headless || row.Timeout != 1000 || !row.VideoEnabled || !row.ScreenshotEnabled || row.ScreenshotMode != "always" ||
		row.TimingEnabled || row.TimingMode != "instant" || row.SpeedMultiplier != 2.5 || !row.ContinueOnError ||
		!row.AssertAutoCheckpoints || row.QueueName != h.queue.Stream() || row.JobID == "" || row.ActionsTotal != 5 {
		t.Errorf("row: %+v", row)
	}
}

func TestCreateRunValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	recID := h.uploadRecording()
	r := h.do("POST", "/api/v1/runs", map[string]any{
		"recordingId": "nope",
		"options": map[string]any{"browser": "firefox", "timeout": 999, "speedMultiplier": 11, "timingMode": "slow",
			"headless": "yes", "colour": "red", "variables": map[string]any{}, "screenshotMode": 3, "maxActionDelay": 1.5},
		"triggeredBy": "cron",
		"ciMetadata":  []int{1},
		"extra":       true,
	}).wantError(t, 400, CodeValidation)
	want := []string{"extra", "recordingId", "options.colour", "options.variables", "options.browser", "options.headless",
		"options.timeout", "options.screenshotMode", "options.timingMode", "options.speedMultiplier", "options.maxActionDelay",
		"triggeredBy", "ciMetadata"}
	got := r.problemPaths()
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("paths\n got %v\nwant %v", got, want)
	}
	if !strings.Contains(string(r.Raw), "firefox is not available on this deployment (available: chromium)") {
		t.Errorf("browser message: %s", r.Raw)
	}
	h.do("POST", "/api/v1/runs", map[string]any{}).wantError(t, 400, CodeValidation)
	// Variables the recording does not take, and values that are not strings.
	r = h.do("POST", "/api/v1/runs", map[string]any{"recordingId": recID, "variables": map[string]any{"NOPE": "x"}}).wantError(t, 400, CodeValidation)
	if p := r.problemPaths(); !slices.Equal(p, []string{"variables.NOPE"}) || !strings.Contains(string(r.Raw), "LOGIN_PASSWORD") {
		t.Errorf("unknown variable: %s", r.Raw)
	}
	r = h.do("POST", "/api/v1/runs", map[string]any{"recordingId": recID, "variables": map[string]any{"LOGIN_PASSWORD": 3}}).wantError(t, 400, CodeValidation)
	if p := r.problemPaths(); !slices.Equal(p, []string{"variables.LOGIN_PASSWORD"}) {
		t.Errorf("paths %v", p)
	}
	h.do("POST", "/api/v1/runs", map[string]any{"recordingId": recID}, withHeader(HeaderIdempotencyKey, "has space")).wantError(t, 400, CodeValidation)
	h.do("POST", "/api/v1/runs", map[string]any{"recordingId": uuid.NewString()}).wantError(t, 404, CodeRecordingNotFound)
	// Nothing was created by any of these.
	if l := h.do("GET", "/api/v1/runs", nil).must(t, 200).list(); len(l) != 0 {
		t.Fatalf("runs left behind: %v", l)
	}
}

func TestVariableValuesNeverReturned(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	recID := h.uploadRecording()
	run := h.createRun(recID, map[string]any{"variables": map[string]any{"LOGIN_PASSWORD": "hunter2-secret"}})
	id := run["id"].(string)
	for _, path := range []string{"/api/v1/runs/" + id, "/api/v1/runs", "/api/v1/runs/" + id + "/actions"} {
		r := h.do("GET", path, nil).must(t, 200)
		if strings.Contains(string(r.Raw), "hunter2-secret") {
			t.Fatalf("%s leaks a variable value: %s", path, r.Raw)
		}
	}
	got := h.do("GET", "/api/v1/runs/"+id, nil).data()
	if fmt.Sprint(got["variables"]) != "[LOGIN_PASSWORD]" {
		t.Fatalf("variable names: %v", got["variables"])
	}
	// The worker finds the value in the row.
	var row persistence.Run
	if err := testDB().NewSelect().Model(&row).Where("id = ?", id).Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if row.Variables["LOGIN_PASSWORD"] != "hunter2-secret" {
		t.Fatalf("stored variables %v", row.Variables)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := newHarness(t, func(c *Config) { c.Now = clock })
	recID := h.uploadRecording()
	body := map[string]any{"recordingId": recID}
	first := h.do("POST", "/api/v1/runs", body, withHeader(HeaderIdempotencyKey, "build-42")).must(t, 201)
	again := h.do("POST", "/api/v1/runs", body, withHeader(HeaderIdempotencyKey, "build-42")).must(t, 201)
	if first.data()["id"] != again.data()["id"] || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("repeat made a new run: %v vs %v", first.data(), again.data())
	}
	other := h.do("POST", "/api/v1/runs", body, withHeader(HeaderIdempotencyKey, "build-43")).must(t, 201)
	if other.data()["id"] == first.data()["id"] {
		t.Fatal("another key returned the first run")
	}
	// Another user's identical key is theirs.
	h2 := newHarness(t)
	rec2 := h2.uploadRecording()
	if r := h2.do("POST", "/api/v1/runs", map[string]any{"recordingId": rec2}, withHeader(HeaderIdempotencyKey, "build-42")).must(t, 201); r.data()["id"] == first.data()["id"] {
		t.Fatal("keys are shared between users")
	}
	// After 24 h the key makes a new run.
	mu.Lock()
	now = now.Add(persistence.IdempotencyWindow + time.Minute)
	mu.Unlock()
	late := h.do("POST", "/api/v1/runs", body, withHeader(HeaderIdempotencyKey, "build-42")).must(t, 201)
	if late.data()["id"] == first.data()["id"] || late.Header.Get("Idempotent-Replayed") != "" {
		t.Fatal("expired key replayed")
	}
	// Concurrent requests with one key make one run.
	var wg sync.WaitGroup
	ids := make([]any, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = h.do("POST", "/api/v1/runs", body, withHeader(HeaderIdempotencyKey, "race")).must(t, 201).data()["id"]
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent repeats made several runs: %v", ids)
		}
	}
	n, err := h.rdb.XLen(context.Background(), h.queue.Stream()).Result()
	if err != nil || n != 4 { // build-42, build-43, build-42 after 24 h, race
		t.Fatalf("stream has %d entries, want 4 (%v)", n, err)
	}
}

func TestListRuns(t *testing.T) {
	t.Parallel()
	// Every run gets the same creation time, so order and pages rest on the id tie-break.
	fixed := time.Date(2026, 1, 31, 7, 17, 38, 112_000_000, time.UTC)
	h := newHarness(t, func(c *Config) { c.Now = func() time.Time { return fixed } })
	recA, recB := h.uploadRecording(), h.uploadRecording()
	var all []string
	for i := range 7 {
		rec, trig := recA, "api"
		if i%2 == 1 {
			rec, trig = recB, "ci"
		}
		all = append(all, h.createRun(rec, map[string]any{"triggeredBy": trig})["id"].(string))
	}
	// Cancel two so there is more than one status.
	h.do("POST", "/api/v1/runs/"+all[0]+"/cancel", nil).must(t, 200)
	h.do("POST", "/api/v1/runs/"+all[1]+"/cancel", nil).must(t, 200)

	ids := func(q string) []string {
		t.Helper()
		var out []string
		for _, it := range h.do("GET", "/api/v1/runs"+q, nil).must(t, 200).list() {
			out = append(out, it.(map[string]any)["id"].(string))
		}
		return out
	}
	desc := slices.Clone(all)
	sort.Sort(sort.Reverse(sort.StringSlice(desc)))
	if got := ids(""); !slices.Equal(got, desc) {
		t.Errorf("default order (createdAt desc, then id desc)\n got %v\nwant %v", got, desc)
	}
	// Pages of 3 in both directions cover every run exactly once.
	for _, order := range []string{"asc", "desc"} {
		for _, sortBy := range persistence.RunSortKeys() {
			var paged []string
			for page := 1; page <= 3; page++ {
				paged = append(paged, ids(fmt.Sprintf("?limit=3&page=%d&sortBy=%s&sortOrder=%s", page, sortBy, order))...)
			}
			sorted := slices.Clone(paged)
			slices.Sort(sorted)
			if len(paged) != 7 || len(slices.Compact(sorted)) != 7 {
				t.Errorf("%s %s pages overlap or miss runs: %v", sortBy, order, paged)
			}
		}
	}
	if got := ids("?status=cancelled"); len(got) != 2 {
		t.Errorf("status filter: %v", got)
	}
	if got := ids("?status=queued,cancelled"); len(got) != 7 {
		t.Errorf("status list: %v", got)
	}
	if got := ids("?status=queued&status=cancelled"); len(got) != 7 {
		t.Errorf("repeated status: %v", got)
	}
	if got := ids("?recordingId=" + recB); len(got) != 3 {
		t.Errorf("recording filter: %v", got)
	}
	if got := ids("?triggeredBy=ci&status=queued"); len(got) != 2 {
		t.Errorf("trigger filter: %v", got)
	}
	if got := ids("?browser=chromium"); len(got) != 7 {
		t.Errorf("browser filter: %v", got)
	}
	if got := ids("?browser=webkit"); len(got) != 0 {
		t.Errorf("browser filter: %v", got)
	}
	r := h.do("GET", "/api/v1/runs?limit=3&page=3", nil).must(t, 200)
	pg := r.Body["pagination"].(map[string]any)
	if pg["total"] != float64(7) || pg["totalPages"] != float64(3) || pg["hasNext"] != false || pg["hasPrevious"] != true || len(r.list()) != 1 {
		t.Errorf("pagination %v", pg)
	}
	r = h.do("GET", "/api/v1/runs?limit=0&page=x&status=done&recordingId=1&browser=edge&triggeredBy=cron&sortBy=name&sortOrder=sideways", nil).
		wantError(t, 400, CodeValidation)
	if got, want := r.problemPaths(), []string{"page", "limit", "status", "recordingId", "browser", "triggeredBy", "sortBy", "sortOrder"}; !slices.Equal(got, want) {
		t.Errorf("paths %v, want %v", got, want)
	}
	h.do("GET", "/api/v1/runs?limit=101", nil).wantError(t, 400, CodeValidation)
	// A deleted run is gone from lists; another user sees nothing.
	h.do("DELETE", "/api/v1/runs/"+all[2], nil).must(t, 200)
	if got := ids(""); len(got) != 6 || slices.Contains(got, all[2]) {
		t.Errorf("after delete: %v", got)
	}
	if l := newHarness(t).do("GET", "/api/v1/runs", nil).must(t, 200).list(); len(l) != 0 {
		t.Errorf("another user lists %v", l)
	}
}

func TestForeignRunIsNotFound(t *testing.T) {
	t.Parallel()
	owner := newHarness(t)
	id := owner.createRun(owner.uploadRecording(), nil)["id"].(string)
	stranger := newHarness(t)
	for _, rq := range [][2]string{
		{"GET", "/api/v1/runs/" + id}, {"GET", "/api/v1/runs/" + id + "/actions"},
		{"POST", "/api/v1/runs/" + id + "/cancel"}, {"POST", "/api/v1/runs/" + id + "/retry"}, {"DELETE", "/api/v1/runs/" + id},
	} {
		stranger.do(rq[0], rq[1], nil).wantError(t, 404, CodeRunNotFound)
	}
	if got := owner.do("GET", "/api/v1/runs/"+id, nil).must(t, 200).data(); got["status"] != "queued" {
		t.Fatalf("stranger changed the run: %v", got)
	}
}

// fakeCanceller plays the worker side of a cancel.
type fakeCanceller struct {
	confirm bool  // end the run as cancelled, as a worker would
	err     error // fail to deliver
	mu      sync.Mutex
	seen    []*persistence.Run
	timeout time.Duration
}

func (f *fakeCanceller) CancelRun(ctx context.Context, run *persistence.Run, timeout time.Duration) (bool, error) {
	f.mu.Lock()
	f.seen = append(f.seen, run)
	f.timeout = timeout
	f.mu.Unlock()
	if f.err != nil {
		return false, f.err
	}
	if !f.confirm {
		return false, nil
	}
	runs := &persistence.Runs{DB: testDB()}
	if err := runs.Cancel(ctx, run.ID, run.Attempt); err != nil {
		return false, err
	}
	return true, nil
}

// startRun moves a queued run to running as a worker would.
func startRun(t *testing.T, id string) {
	t.Helper()
	runs := &persistence.Runs{DB: testDB()}
	_, err := runs.Start(context.Background(), uuid.MustParse(id), 0,
		persistence.Owner{Worker: "worker-test"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
}

func TestCancelQueuedRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.createRun(h.uploadRecording(), nil)["id"].(string)
	got := h.do("POST", "/api/v1/runs/"+id+"/cancel", nil).must(t, 200).data()
	if got["status"] != "cancelled" || got["cancelRequestedAt"] == nil || got["completedAt"] == nil || got["actionsSkipped"] != float64(5) {
		t.Fatalf("cancelled run: %v", got)
	}
	for _, a := range h.do("GET", "/api/v1/runs/"+id+"/actions", nil).must(t, 200).list() {
		m := a.(map[string]any)
		if m["status"] != "skipped" || m["reason"] != "cancelled" {
			t.Fatalf("action %v", m)
		}
	}
	h.do("POST", "/api/v1/runs/"+id+"/cancel", nil).wantError(t, 400, CodeInvalidRunStatus)
	// A finished run never changes: a worker that still holds it cannot start it.
	runs := &persistence.Runs{DB: testDB()}
	if _, err := runs.Start(context.Background(), uuid.MustParse(id), 0, persistence.Owner{}, time.Minute); !errors.Is(err, persistence.ErrStale) {
		t.Fatalf("start after cancel: %v", err)
	}
}

func TestCancelRunningRun(t *testing.T) {
	t.Parallel()
	t.Run("worker confirms", func(t *testing.T) {
		t.Parallel()
		fc := &fakeCanceller{confirm: true}
		h := newHarness(t, func(c *Config) { c.Canceller = fc })
		id := h.createRun(h.uploadRecording(), nil)["id"].(string)
		startRun(t, id)
		got := h.do("POST", "/api/v1/runs/"+id+"/cancel", nil).must(t, 200).data()
		if got["status"] != "cancelled" || got["cancelRequestedAt"] == nil {
			t.Fatalf("run: %v", got)
		}
		if len(fc.seen) != 1 || fc.seen[0].CancelRequestedAt == nil || fc.seen[0].WorkerNode != "worker-test" || fc.timeout != CancelWait {
			t.Fatalf("canceller got %+v (timeout %v)", fc.seen, fc.timeout)
		}
		h.do("POST", "/api/v1/runs/"+id+"/cancel", nil).wantError(t, 400, CodeInvalidRunStatus)
	})
	t.Run("worker silent", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(c *Config) { c.Canceller = &fakeCanceller{} })
		id := h.createRun(h.uploadRecording(), nil)["id"].(string)
		startRun(t, id)
		got := h.do("POST", "/api/v1/runs/"+id+"/cancel", nil).must(t, 202).data()
		if got["status"] != "running" || got["cancelRequestedAt"] == nil {
			t.Fatalf("run: %v", got)
		}
		// A second request keeps the first request time.
		again := h.do("POST", "/api/v1/runs/"+id+"/cancel", nil).must(t, 202).data()
		if again["cancelRequestedAt"] != got["cancelRequestedAt"] {
			t.Fatalf("cancelRequestedAt moved: %v -> %v", got["cancelRequestedAt"], again["cancelRequestedAt"])
		}
	})
	t.Run("delivery fails", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(c *Config) { c.Canceller = &fakeCanceller{err: errors.New("no route to actor")} })
		id := h.createRun(h.uploadRecording(), nil)["id"].(string)
		startRun(t, id)
		h.do("POST", "/api/v1/runs/"+id+"/cancel", nil).must(t, 202)
		if !strings.Contains(h.logs.String(), "no route to actor") {
			t.Fatal("delivery failure not logged")
		}
	})
	t.Run("no canceller", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		id := h.createRun(h.uploadRecording(), nil)["id"].(string)
		startRun(t, id)
		got := h.do("POST", "/api/v1/runs/"+id+"/cancel", nil).must(t, 202).data()
		if got["cancelRequestedAt"] == nil {
			t.Fatalf("run: %v", got)
		}
		// The worker learns of it at its next lease renewal.
		runs := &persistence.Runs{DB: testDB()}
		lease, err := runs.RenewLease(context.Background(), uuid.MustParse(id), 1, time.Minute)
		if err != nil || !lease.CancelRequested {
			t.Fatalf("lease %+v, %v", lease, err)
		}
	})
}

func TestRetryRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	recID := h.uploadRecording()
	src := h.createRun(recID, map[string]any{
		"options":   map[string]any{"timeout": 5000, "continueOnError": true},
		"variables": map[string]any{"LOGIN_PASSWORD": "pw"}, "triggeredBy": "schedule",
	})["id"].(string)
	h.do("POST", "/api/v1/runs/"+src+"/retry", nil).wantError(t, 400, CodeInvalidRunStatus)
	startRun(t, src)
	h.do("POST", "/api/v1/runs/"+src+"/retry", nil).wantError(t, 400, CodeInvalidRunStatus)
	runs := &persistence.Runs{DB: testDB()}
	if err := runs.Finish(context.Background(), uuid.MustParse(src), 1, persistence.Outcome{Status: persistence.StatusFailed, CompletedAt: time.Now(), ErrorMessage: "element not found"}); err != nil {
		t.Fatal(err)
	}
	retry := h.do("POST", "/api/v1/runs/"+src+"/retry", nil).must(t, 201).data()
	if retry["retryOf"] != src || retry["status"] != "queued" || retry["id"] == src {
		t.Fatalf("retry: %v", retry)
	}
	a := h.do("GET", "/api/v1/runs/"+src, nil).data()
	b := h.do("GET", "/api/v1/runs/"+retry["id"].(string), nil).data()
	if fmt.Sprint(a["options"]) != fmt.Sprint(b["options"]) || b["triggeredBy"] != "schedule" || fmt.Sprint(b["variables"]) != "[LOGIN_PASSWORD]" || b["actionsTotal"] != float64(5) {
		t.Fatalf("retry differs:\n%v\n%v", a, b)
	}
	var row persistence.Run
	if err := testDB().NewSelect().Model(&row).Where("id = ?", retry["id"]).Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if row.Variables["LOGIN_PASSWORD"] != "pw" || row.Timeout != 5000 || !row.ContinueOnError {
		t.Fatalf("row %+v", row)
	}
	// A retry of a run whose recording is gone has nothing to run.
	h.do("DELETE", "/api/v1/recordings/"+recID, nil).must(t, 200)
	h.do("POST", "/api/v1/runs/"+src+"/retry", nil).wantError(t, 404, CodeRecordingNotFound)
	// The run keeps its snapshot of the deleted recording.
	if got := h.do("GET", "/api/v1/runs/"+src, nil).must(t, 200).data(); got["recordingName"] != "Log in and open the dashboard" {
		t.Fatalf("snapshot lost: %v", got)
	}
}

func TestDeleteRun(t *testing.T) {
	t.Parallel()
	fc := &fakeCanceller{confirm: true}
	h := newHarness(t, func(c *Config) { c.Canceller = fc })
	recID := h.uploadRecording()
	queued := h.createRun(recID, nil)["id"].(string)
	running := h.createRun(recID, nil)["id"].(string)
	startRun(t, running)
	for _, id := range []string{queued, running} {
		d := h.do("DELETE", "/api/v1/runs/"+id, nil).must(t, 200).data()
		if d["id"] != id || d["deletedAt"] == nil {
			t.Fatalf("delete: %v", d)
		}
		h.do("GET", "/api/v1/runs/"+id, nil).wantError(t, 404, CodeRunNotFound)
		h.do("DELETE", "/api/v1/runs/"+id, nil).wantError(t, 404, CodeRunNotFound)
		var row persistence.Run
		if err := testDB().NewSelect().Model(&row).Where("id = ?", id).Scan(context.Background()); err != nil {
			t.Fatal(err)
		}
		if row.Status != persistence.StatusCancelled || row.DeletedAt == nil {
			t.Fatalf("deleted run %s is %s (deleted %v)", id, row.Status, row.DeletedAt)
		}
	}
	if len(fc.seen) != 1 {
		t.Fatalf("canceller called %d times, want once (for the running run)", len(fc.seen))
	}
}

// TestCreateRunFollowsTheRecordingsVersion: the action references a node
// keeps per recording are those of the version read with the run, so a run
// created after an update has the new version's rows.
func TestCreateRunFollowsTheRecordingsVersion(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	recID := h.uploadRecording()
	actionIDs := func(runID string) []string {
		var rows []persistence.RunAction
		if err := testDB().NewSelect().Model(&rows).Where("run_id = ?", runID).Order("action_index").Scan(context.Background()); err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(rows))
		for i, r := range rows {
			if r.ActionIndex != i || r.Status != persistence.ActionPending {
				t.Errorf("row %d: %+v", i, r)
			}
			ids[i] = r.ActionID
		}
		return ids
	}
	first := h.createRun(recID, nil)["id"].(string)
	again := h.createRun(recID, nil)["id"].(string) // from the node's cache
	if a, b := actionIDs(first), actionIDs(again); len(a) != 5 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("rows of the same version differ: %v %v", a, b)
	}

	var m map[string]any
	_ = json.Unmarshal(fixtureWithID(t, "rec_v2"), &m)
	acts := m["actions"].([]any)
	m["actions"] = []any{acts[0], acts[3]}
	nd, _ := json.Marshal(map[string]any{"data": m})
	h.do("PUT", "/api/v1/recordings/"+recID, nd).must(t, 200)

	after := h.createRun(recID, nil)
	got := h.do("GET", "/api/v1/runs/"+after["id"].(string), nil).must(t, 200).data()
	if got["actionsTotal"] != float64(2) {
		t.Errorf("actionsTotal after the update = %v, want 2", got["actionsTotal"])
	}
	want := []string{acts[0].(map[string]any)["id"].(string), acts[3].(map[string]any)["id"].(string)}
	if ids := actionIDs(after["id"].(string)); fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("rows after the update = %v, want %v", ids, want)
	}
	var row persistence.Run
	if err := testDB().NewSelect().Model(&row).Where("id = ?", after["id"]).Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if row.RecordingVersion != 2 || row.JobID == "" || row.Status != persistence.StatusQueued {
		t.Errorf("run after the update: version %d, job %q, status %s", row.RecordingVersion, row.JobID, row.Status)
	}
}
