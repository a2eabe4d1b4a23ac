package browser

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-rod/rod/lib/proto"
	"github.com/saveaction/runner/recording"
)

// fakeClock advances only when waited on, and records every wait, so
// timing is tested without sleeping.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func TestTiming(t *testing.T) {
	t.Parallel()
	// Unknown action types are skipped at once, so only the waits count.
	at := func(ms float64) recording.Action { return recording.Action{Type: "noop", Timestamp: ms} }
	actions := []recording.Action{at(1_700_000_000_000), at(1_700_000_001_000), at(1_700_000_003_000), at(1_700_000_100_000)}
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	cases := []struct {
		name string
		opts func(*Options)
		want []time.Duration
	}{
		// Offsets 0, 1000, 3000, 100000 ms after the absolute first stamp;
		// each wait is what is left of the offset, capped at 30 s.
		{"realistic", func(o *Options) {}, ms(1000, 2000, 30000)},
		{"speed 2 is twice as fast", func(o *Options) { o.SpeedMultiplier = 2 }, ms(500, 1000, 30000)},
		{"fast", func(o *Options) { o.TimingMode = TimingFast }, ms(250, 500, 24250)},
		{"cap", func(o *Options) { o.MaxActionDelay = 1500 * time.Millisecond }, ms(1000, 1500, 1500)},
		{"instant", func(o *Options) { o.TimingMode = TimingInstant }, nil},
		{"disabled", func(o *Options) { o.TimingEnabled = false }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			clock := &fakeClock{now: time.Unix(1000, 0)}
			opts := Options{RunID: "r", TimingEnabled: true, TimingMode: TimingRealistic, Clock: clock}
			c.opts(&opts)
			res, _ := replayAndRead(t, newRec("about:blank", actions...), opts)
			wantStatus(t, res, RunPassed)
			if len(clock.waits) != len(c.want) {
				t.Fatalf("waits %v, want %v", clock.waits, c.want)
			}
			for i := range c.want {
				if clock.waits[i] != c.want[i] {
					t.Errorf("waits %v, want %v", clock.waits, c.want)
					break
				}
			}
		})
	}
}

func TestTimingCountsExecutionTime(t *testing.T) {
	t.Parallel()
	// A clock whose every reading is 100 ms later than the last: the time
	// "spent" between actions comes off the next wait.
	clock := &steppingClock{fakeClock: fakeClock{now: time.Unix(0, 0)}, step: 100 * time.Millisecond}
	opts := Options{RunID: "r", TimingEnabled: true, Clock: clock}
	rec := newRec("about:blank", recording.Action{Type: "noop", Timestamp: 0}, recording.Action{Type: "noop", Timestamp: 1000})
	res, _ := replayAndRead(t, rec, opts)
	wantStatus(t, res, RunPassed)
	if len(clock.waits) != 1 || clock.waits[0] >= time.Second || clock.waits[0] <= 0 {
		t.Errorf("waits %v, want one wait shorter than 1s", clock.waits)
	}
}

type steppingClock struct {
	fakeClock
	step time.Duration
}

func (c *steppingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

func TestHoverDurationInRealisticMode(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Unix(0, 0)}
	hover := recording.Action{Type: recording.TypeHover, Selector: &recording.Selector{ID: "hover-target"}, Duration: 1200}
	opts := Options{RunID: "r", TimingEnabled: true, Clock: clock, Timeout: 5 * time.Second}
	res, got := replayAndRead(t, newRec(actionsPage(), hover), opts, text("#log"))
	wantStatus(t, res, RunPassed)
	if got[0] != "hovered" || len(clock.waits) != 1 || clock.waits[0] != 1200*time.Millisecond {
		t.Errorf("log %q waits %v", got[0], clock.waits)
	}
}

// cancelObserver cancels the run when the given action starts.
type cancelObserver struct {
	at     int
	cancel context.CancelFunc
	done   []ActionResult
}

func (o *cancelObserver) ActionStarted(i int, _ *recording.Action) {
	if i == o.at {
		o.cancel()
	}
}
func (o *cancelObserver) ActionDone(r ActionResult) { o.done = append(o.done, r) }

func TestCancel(t *testing.T) {
	t.Parallel()
	b := needBrowser(t)
	ctx, cancel := context.WithCancel(context.Background())
	obs := &cancelObserver{at: 1, cancel: cancel}
	opts := quick()
	opts.Timeout = 30 * time.Second
	rec := newRec(fixture(), clickID("click-btn"), clickID("never-appears"), clickID("click-btn"))
	start := time.Now()
	res := b.Replay(ctx, rec, opts, obs)
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("cancel took %s", d)
	}
	wantStatus(t, res, RunCancelled)
	if res.Actions[0].Status != StatusSuccess {
		t.Errorf("first action %s", res.Actions[0].Status)
	}
	for _, a := range res.Actions[1:] {
		if a.Status != StatusSkipped || a.Reason != ReasonCancelled {
			t.Errorf("%s: %s %q", a.ActionID, a.Status, a.Reason)
		}
	}
	if len(obs.done) != 3 || res.Crashed {
		t.Errorf("observer saw %d results; crashed %v", len(obs.done), res.Crashed)
	}
}

func TestCancelDuringTimingWait(t *testing.T) {
	t.Parallel()
	b := needBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
	defer cancel()
	rec := newRec(fixture(), recording.Action{Type: "noop", Timestamp: 0}, recording.Action{Type: "noop", Timestamp: 60_000})
	start := time.Now()
	res := b.Replay(ctx, rec, Options{RunID: "r", TimingEnabled: true}, nil)
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %s", d)
	}
	wantStatus(t, res, RunCancelled)
	if a := res.Actions[1]; a.Status != StatusSkipped || a.Reason != ReasonCancelled {
		t.Errorf("second action %s %q", a.Status, a.Reason)
	}
}

func TestStartPageFailure(t *testing.T) {
	t.Parallel()
	res, _ := replayAndRead(t, newRec("http://127.0.0.1:1/", clickID("a"), clickID("b")), quick())
	wantStatus(t, res, RunFailed)
	if !strings.HasPrefix(res.ErrorMessage, "start page did not load: ") || res.Crashed {
		t.Errorf("error %q crashed %v", res.ErrorMessage, res.Crashed)
	}
	if res.ActionsSkipped != 2 || res.ActionsExecuted != 0 {
		t.Errorf("counts %+v", res)
	}
	for _, a := range res.Actions {
		if a.Status != StatusSkipped || a.Reason != res.ErrorMessage {
			t.Errorf("%s %s %q", a.ActionID, a.Status, a.Reason)
		}
	}
}

func TestBadInputNeverPanics(t *testing.T) {
	t.Parallel()
	b := needBrowser(t)
	rec := newRec(fixture(),
		recording.Action{Type: recording.TypeClick},                                  // no selector
		recording.Action{Type: recording.TypeInput, Selector: &recording.Selector{}}, // empty selector, no value
		recording.Action{Type: recording.TypeSelect},
		recording.Action{Type: recording.TypeScroll, Element: json.RawMessage(`{"bogus":1}`)},
		recording.Action{Type: recording.TypeNavigation},
		recording.Action{Type: recording.TypeKeypress},
		recording.Action{Type: recording.TypeCheckpoint},
		recording.Action{Type: recording.TypeModalLifecycle},
		recording.Action{Type: ""},
	)
	opts := quick()
	opts.ContinueOnError = true
	opts.Timeout = 500 * time.Millisecond
	res := b.Replay(context.Background(), rec, opts, nil)
	if len(res.Actions) != len(rec.Actions) || strings.HasPrefix(res.ErrorMessage, "internal error") {
		t.Fatalf("result %+v", res)
	}
	if res := b.Replay(context.Background(), nil, opts, nil); res.Status != RunFailed {
		t.Errorf("nil recording: %s", res.Status)
	}
	var nilBrowser *Browser
	if res := nilBrowser.Replay(context.Background(), rec, opts, nil); res.Status != RunFailed || !res.Crashed {
		t.Errorf("nil browser: %s crashed %v", res.Status, res.Crashed)
	}
}

// crashObserver crashes the page's renderer when the given action starts.
type crashObserver struct {
	r  *replay
	at int
	wg sync.WaitGroup
}

func (o *crashObserver) ActionStarted(i int, _ *recording.Action) {
	if i != o.at {
		return
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = proto.PageCrash{}.Call(o.r.s.client(ctx)) // does not answer: the renderer is gone
	}()
}
func (o *crashObserver) ActionDone(ActionResult) {}

func TestRendererCrashIsReportedAsCrash(t *testing.T) {
	t.Parallel()
	b := needBrowser(t)
	rec := newRec(fixture(), clickID("click-btn"), clickID("never-appears"), clickID("click-btn"))
	opts := quick()
	opts.Timeout = 20 * time.Second
	opts.ContinueOnError = true // a crash stops the run all the same
	r := &replay{b: b, opts: opts.withDefaults()}
	r.clock = r.opts.Clock
	obs := &crashObserver{r: r, at: 1}
	r.obs = obs
	start := time.Now()
	res := r.run(context.Background(), rec)
	obs.wg.Wait()
	if !res.Crashed || res.Status != RunFailed {
		t.Fatalf("crashed %v status %s: %s%s", res.Crashed, res.Status, res.ErrorMessage, summary(res))
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("crash noticed after %s", d)
	}
	if a := res.Actions[1]; a.Status != StatusFailed || !strings.Contains(a.Error, "crashed") {
		t.Errorf("crashed action: %s %q", a.Status, a.Error)
	}
	if a := res.Actions[2]; a.Status != StatusSkipped {
		t.Errorf("action after the crash: %s", a.Status)
	}
	if !b.Alive() {
		t.Fatal("a renderer crash killed the browser")
	}
	// The browser still serves the next run.
	next, _ := replayAndRead(t, newRec(fixture(), clickID("click-btn")), quick())
	wantStatus(t, next, RunPassed)
}

func TestResultJSON(t *testing.T) {
	t.Parallel()
	res := &Result{Status: RunFailed, ActionsTotal: 2, Actions: []ActionResult{{ActionID: "act_001", ActionType: "click",
		Status: StatusSuccess, SelectorUsed: "id"}, {ActionID: "act_002", ActionType: "click", Index: 1, Status: StatusSkipped,
		Reason: ReasonPreviousFailed, StartedAt: time.Date(2026, 1, 31, 7, 17, 38, 112e6, time.UTC)}}}
	data, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"status", "durationMs", "actionsTotal", "actionsExecuted", "actionsFailed", "actionsSkipped",
		"assertions", "actions", "screenshots", "video"} {
		if _, ok := m[k]; !ok {
			t.Errorf("missing %q in %s", k, data)
		}
	}
	if m["video"] != nil || len(m["screenshots"].([]any)) != 0 {
		t.Errorf("video/screenshots: %s", data)
	}
	a := m["actions"].([]any)[0].(map[string]any)
	for _, k := range []string{"error", "reason", "screenshotPath", "startedAt", "completedAt"} {
		if v, ok := a[k]; !ok || v != nil {
			t.Errorf("action %q = %v (present %v), want null", k, v, ok)
		}
	}
	if a["index"] != 0.0 || a["selectorUsed"] != "id" || len(a["warnings"].([]any)) != 0 {
		t.Errorf("action %s", data)
	}
	b := m["actions"].([]any)[1].(map[string]any)
	if b["selectorUsed"] != nil || b["reason"] != ReasonPreviousFailed || b["startedAt"] != "2026-01-31T07:17:38.112Z" {
		t.Errorf("second action %v", b)
	}
}

func TestVideo(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	b := needBrowser(t)
	dir := filepath.Join(t.TempDir(), "videos")
	opts := quick()
	opts.RunID = "vid1"
	opts.VideoDir = dir
	opts.TimingMode = TimingRealistic
	// About 1.5 s of run: the video must last about as long.
	rec := newRec(fixture(), clickID("click-btn"), recording.Action{Type: "noop", Timestamp: 1500}, clickID("load-content-btn"))
	start := time.Now()
	res := b.Replay(context.Background(), rec, opts, nil)
	took := time.Since(start)
	wantStatus(t, res, RunPassed)
	if res.VideoError != "" || res.Video == "" {
		t.Fatalf("video %q error %q", res.Video, res.VideoError)
	}
	if base := filepath.Base(res.Video); base != "run-vid1.mp4" && base != "run-vid1.webm" {
		t.Errorf("video name %s", base)
	}
	if _, err := exec.LookPath("ffprobe"); err == nil {
		out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", res.Video).Output()
		if err != nil {
			t.Fatal(err)
		}
		d, err := time.ParseDuration(strings.TrimSpace(string(out)) + "s")
		if err != nil {
			t.Fatal(err)
		}
		if d < 1200*time.Millisecond || d > took+time.Second {
			t.Errorf("video lasts %s; the run took %s", d, took)
		}
	}
	_ = b
}

func TestVideoWithoutFFmpeg(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := quick()
	opts.VideoDir = dir
	r := &replay{b: needBrowser(t), opts: opts.withDefaults(),
		lookFFmpeg: func() (string, error) { return "", exec.ErrNotFound }}
	r.clock = r.opts.Clock
	res := r.run(context.Background(), newRec(fixture(), clickID("click-btn")))
	wantStatus(t, res, RunPassed)
	if res.VideoError != "video unavailable: ffmpeg not found" || res.Video != "" {
		t.Errorf("video %q error %q", res.Video, res.VideoError)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files left: %v", entries)
	}
}

func TestLaunchAndClose(t *testing.T) {
	needBrowser(t)
	b, err := Launch(context.Background(), LaunchOptions{Headless: true})
	if err != nil {
		t.Fatal(err)
	}
	pid := b.PID()
	if pid <= 0 || !b.Alive() {
		t.Fatalf("pid %d alive %v", pid, b.Alive())
	}
	start := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %s", d)
	}
	if b.Alive() || processAlive(pid) {
		t.Error("chromium still running after Close")
	}
	if b.tempDir != "" {
		if _, err := os.Stat(b.tempDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("profile %s left behind: %v", b.tempDir, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	res := b.Replay(context.Background(), newRec(fixture(), clickID("click-btn")), quick(), nil)
	if res.Status != RunFailed || !res.Crashed || res.ActionsSkipped != 1 {
		t.Errorf("replay on a closed browser: %s crashed %v %s", res.Status, res.Crashed, res.ErrorMessage)
	}
}

// A browser whose own process died (crashed, killed) leaves its helpers
// behind: its process group cannot be found from a dead pid. One that is
// stuck (here stopped, as a renderer forked while its parent died can be)
// never exits by itself. Close kills every process of the browser's
// profile.
func TestCloseKillsTheHelpersOfADeadBrowser(t *testing.T) {
	needBrowser(t)
	b, err := Launch(context.Background(), LaunchOptions{Headless: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	var helper int
	for pid, dir := range ProfileProcesses() {
		if dir == b.profile && pid != b.PID() {
			helper = pid
			break
		}
	}
	if helper == 0 {
		t.Fatalf("no helper process of %d runs with profile %s", b.PID(), b.profile)
	}
	if err := syscall.Kill(helper, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(helper, syscall.SIGKILL) })
	if err := syscall.Kill(b.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.proc.waitGone(5 * time.Second)
	if processAlive(b.PID()) {
		t.Fatalf("browser %d outlived SIGKILL", b.PID())
	}
	_ = b.Close()
	deadline := time.Now().Add(3 * time.Second)
	for processAlive(helper) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if processAlive(helper) {
		t.Fatalf("helper %d of the dead browser outlived Close", helper)
	}
}

func TestFindChrome(t *testing.T) {
	t.Setenv("CHROME_BIN", "/nonexistent/chrome")
	if _, err := FindChrome(); err == nil || !strings.Contains(err.Error(), "CHROME_BIN") {
		t.Errorf("err = %v", err)
	}
	t.Setenv("CHROME_BIN", "")
	t.Setenv("PATH", t.TempDir())
	if _, err := FindChrome(); !errors.Is(err, ErrNoChrome) {
		t.Errorf("err = %v", err)
	}
}

// killObserver kills the browser process when the given action starts.
type killObserver struct {
	b  *Browser
	at int
}

func (o *killObserver) ActionStarted(i int, _ *recording.Action) {
	if i == o.at {
		o.b.proc.killTree()
	}
}
func (o *killObserver) ActionDone(ActionResult) {}

func TestBrowserDeathIsReportedAsCrash(t *testing.T) {
	t.Parallel()
	needBrowser(t)
	b, err := Launch(context.Background(), LaunchOptions{Headless: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	opts := quick()
	opts.Timeout = 20 * time.Second
	start := time.Now()
	res := b.Replay(context.Background(), newRec(fixture(), clickID("click-btn"), clickID("never-appears"), clickID("click-btn")),
		opts, &killObserver{b: b, at: 1})
	if !res.Crashed || res.Status != RunFailed || !strings.Contains(res.ErrorMessage, "crashed") {
		t.Fatalf("crashed %v status %s: %s%s", res.Crashed, res.Status, res.ErrorMessage, summary(res))
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("browser death noticed after %s", d)
	}
	// The connection can drop a moment before the killed process is gone.
	for deadline := time.Now().Add(5 * time.Second); b.Alive() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if b.Alive() {
		t.Error("browser alive 5 s after kill")
	}
}
