package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/saveaction/runner/recording"
)

// crossOrigin is the fixture server under another site (localhost instead
// of 127.0.0.1), so that Chromium puts its frames in another process.
func crossOrigin() string { return strings.Replace(shared.srv.URL, "127.0.0.1", "localhost", 1) }

// framesPage is the frames fixture with a cross-site frame and, when late
// > 0, a frame added after late milliseconds.
func framesPage(late int) string {
	u := fixtureURL("/frames.html?cross=" + crossOrigin())
	if late > 0 {
		u += fmt.Sprintf("&late=%d", late)
	}
	return u
}

// inFrame sets an action's recorded frame fields.
func inFrame(a recording.Action, selectors []string, frameURL string, frameID any) recording.Action {
	if selectors != nil {
		a.FrameSelector, _ = json.Marshal(selectors)
	}
	a.FrameURL = frameURL
	if frameID != nil {
		a.FrameID, _ = json.Marshal(frameID)
	}
	return a
}

// frameLog is what the frames reported to the page.
const frameLog = "document.querySelector('#frame-log').textContent"

// launchIsolated starts a browser with strict site isolation, where a
// cross-site frame runs in its own renderer process and reports through
// its own DevTools session (the shared test browser, like production, runs
// with go-rod's default of site isolation off, where cross-site frames
// share the page's process). It is closed when the test ends.
func launchIsolated(t testing.TB) *Browser {
	t.Helper()
	needBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := Launch(ctx, LaunchOptions{Headless: true, ExtraFlags: []string{"--site-per-process", "--disable-features=TranslateUI"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// replayFrames replays rec in b and returns the frame log and how many
// out-of-process frames the page had.
func replayFrames(t *testing.T, b *Browser, rec *recording.Recording, opts Options) (*Result, string, int) {
	t.Helper()
	var log string
	oopifs := 0
	r := &replay{b: b, opts: opts.withDefaults()}
	r.clock = r.opts.Clock
	r.afterRun = func(ctx context.Context, s *session) {
		// Reports travel by postMessage; give the last one a moment.
		deadline := time.Now().Add(2 * time.Second)
		for {
			if err := s.evalExpr(ctx, frameLog, &log); err != nil {
				log = "error: " + err.Error()
			}
			if strings.HasSuffix(log, ";") || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			_ = s.pause(ctx, 20*time.Millisecond)
		}
		s.iframes.mu.Lock()
		oopifs = len(s.iframes.oopif)
		s.iframes.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res := r.run(ctx, rec)
	return res, log, oopifs
}

// Each case runs in instant and in realistic mode and checks what the
// frame reported, not only the status.
func TestFrames(t *testing.T) {
	t.Parallel()
	cross := crossOrigin() + "/frame-inner.html?frame=cross"
	nested := fixtureURL("/frame-inner.html?frame=nested")
	target := func(x, y float64) recording.Action {
		a := clickID("target")
		a.Coordinates = &recording.Point{X: x, Y: y}
		a.CoordinatesRelativeTo = "element"
		return a
	}
	cases := []struct {
		name    string
		late    int
		actions []recording.Action
		status  string
		errHas  string
		log     string
	}{
		{name: "main frame with frameId 0", actions: []recording.Action{inFrame(clickID("main-btn"), nil, "", 0)},
			status: StatusSuccess, log: "main clicked;"},
		{name: "same-origin by selector", actions: []recording.Action{inFrame(clickID("inner-btn"), []string{"#same"}, "", nil)},
			status: StatusSuccess, log: "same clicked;"},
		{name: "nested by selectors", actions: []recording.Action{inFrame(clickID("inner-btn"), []string{"#outer", "#inner"}, "", nil)},
			status: StatusSuccess, log: "nested clicked;"},
		{name: "nested by url", actions: []recording.Action{inFrame(clickID("inner-btn"), nil, nested, 12)},
			status: StatusSuccess, log: "nested clicked;"},
		{name: "cross-origin by selector", actions: []recording.Action{inFrame(clickID("inner-btn"), []string{"#cross"}, "", nil)},
			status: StatusSuccess, log: "cross clicked;"},
		{name: "cross-origin by url", actions: []recording.Action{inFrame(clickID("inner-btn"), nil, cross, nil)},
			status: StatusSuccess, log: "cross clicked;"},
		{name: "search every frame", actions: []recording.Action{inFrame(click(recording.Selector{Text: "Button of cross"}), nil, "", 9)},
			status: StatusSuccess, log: "cross named clicked;"},
		{name: "checkpoint searches every frame", actions: []recording.Action{
			inFrame(checkpoint("elementText", "Button of nested", &recording.Selector{ID: "named-btn", Text: "Button of nested", Priority: []string{"text"}}), nil, "", 4),
			inFrame(clickID("inner-btn"), []string{"#outer", "#inner"}, "", nil)},
			status: StatusSuccess, log: "nested clicked;"},
		{name: "coordinates translate: same-origin", actions: []recording.Action{inFrame(target(12, 7), []string{"#same"}, "", nil)},
			status: StatusSuccess, log: "same target at 12,7;"},
		{name: "coordinates translate: nested", actions: []recording.Action{inFrame(target(50, 21), []string{"#outer", "#inner"}, "", nil)},
			status: StatusSuccess, log: "nested target at 50,21;"},
		{name: "coordinates translate: cross-origin below the fold", actions: []recording.Action{inFrame(target(3, 25), []string{"#cross"}, "", nil)},
			status: StatusSuccess, log: "cross target at 3,25;"},
		{name: "typing key by key in a cross-origin frame", actions: []recording.Action{inFrame(typeInto("inner-input", "héllo", 10), []string{"#cross"}, "", nil)},
			status: StatusSuccess, log: "cross value héllo after 5 keys;"},
		{name: "one-shot input in a nested frame", actions: []recording.Action{inFrame(input(recording.Selector{Name: "inner"}, "abc"), []string{"#outer", "#inner"}, "", nil)},
			status: StatusSuccess, log: "nested value abc after 0 keys;"},
		{name: "a frame that loads late", late: 700, actions: []recording.Action{inFrame(clickID("inner-btn"), []string{"#late"}, "", nil)},
			status: StatusSuccess, log: "late clicked;"},
		{name: "a frame that never appears", actions: []recording.Action{inFrame(clickID("inner-btn"), []string{"#outer", "#never"}, "", nil)},
			status: StatusFailed, errHas: "frame not found: frameSelector #outer >> #never"},
		{name: "a frame url that never appears", actions: []recording.Action{inFrame(clickID("inner-btn"), nil, fixtureURL("/nowhere.html"), nil)},
			status: StatusFailed, errHas: "frame not found: frameUrl " + fixtureURL("/nowhere.html")},
	}
	isolated := launchIsolated(t)
	shared := needBrowser(t)
	runs := []struct {
		name, mode string
		b          *Browser
		oopif      bool
	}{
		{"out-of-process/instant", TimingInstant, isolated, true},
		{"out-of-process/realistic", TimingRealistic, isolated, true},
		{"in-process/instant", TimingInstant, shared, false},
	}
	for _, run := range runs {
		mode := run.mode
		for _, c := range cases {
			t.Run(run.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				opts := quick()
				opts.TimingMode = mode
				opts.Timeout = 15 * time.Second
				if c.status != StatusSuccess {
					opts.Timeout = 1500 * time.Millisecond
				}
				res, log, oopifs := replayFrames(t, run.b, newRec(framesPage(c.late), c.actions...), opts)
				last := res.Actions[len(res.Actions)-1]
				if last.Status != c.status {
					t.Fatalf("status %s, want %s%s", last.Status, c.status, summary(res))
				}
				if c.errHas != "" && !strings.Contains(last.Error, c.errHas) {
					t.Errorf("error %q, want it to contain %q", last.Error, c.errHas)
				}
				if c.status == StatusSuccess && log != c.log {
					t.Errorf("frame log %q, want %q", log, c.log)
				}
				if c.status != StatusSuccess && strings.Contains(log, "clicked") {
					t.Errorf("something was clicked: %q", log)
				}
				// The cross-site frame is out of process exactly when the
				// browser isolates sites (checked once it was used).
				if strings.Contains(c.name, "cross") && (oopifs > 0) != run.oopif {
					t.Errorf("%d out-of-process frames", oopifs)
				}
			})
		}
	}
}

// An action in a frame waits until the frame's document is parsed, as
// actions in the main frame start after its DOMContentLoaded: here the
// field is there while a slow script holds the parser back from the
// script that adds its listeners, so keys typed then would go unseen.
func TestFrameStillParsing(t *testing.T) {
	t.Parallel()
	for _, run := range []struct {
		name string
		a    recording.Action
		log  string
	}{
		{"key by key", typeInto("field", "abc", 10), "parsing value abc after 3 keys;"},
		{"one-shot", input(recording.Selector{ID: "field"}, "abc"), "parsing value abc after 0 keys;"},
	} {
		t.Run(run.name, func(t *testing.T) {
			t.Parallel()
			opts := quick()
			opts.Timeout = 15 * time.Second
			res, log, _ := replayFrames(t, needBrowser(t), newRec(fixtureURL("/frames.html?parsing=1"), inFrame(run.a, []string{"#parsing"}, "", nil)), opts)
			wantStatus(t, res, RunPassed)
			if log != run.log {
				t.Errorf("frame log %q, want %q", log, run.log)
			}
		})
	}
}

// BenchmarkFrameAction compares the cost of an action inside a cross-site
// frame (out of process, in a browser with site isolation; and in process,
// in the default browser) with the same action in the main frame: 20
// clicks each, timed from the first action's start to the last's.
func BenchmarkFrameAction(b *testing.B) {
	isolated := launchIsolated(b)
	shared := needBrowser(b)
	const n = 20
	clicks := func(a recording.Action) []recording.Action {
		out := make([]recording.Action, n)
		for i := range out {
			out[i] = a
		}
		return out
	}
	for _, bc := range []struct {
		name string
		b    *Browser
		a    recording.Action
	}{
		{"main-frame", isolated, clickID("main-btn")},
		{"cross-origin-out-of-process", isolated, inFrame(clickID("inner-btn"), []string{"#cross"}, "", nil)},
		{"cross-origin-in-process", shared, inFrame(clickID("inner-btn"), []string{"#cross"}, "", nil)},
		{"cross-origin-by-url", isolated, inFrame(clickID("inner-btn"), nil, crossOrigin()+"/frame-inner.html?frame=cross", nil)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rec := newRec(framesPage(0), clicks(bc.a)...)
			opts := quick()
			opts.Timeout = 30 * time.Second
			var per time.Duration
			for i := 0; i < b.N; i++ {
				obs := &timingObserver{}
				res := bc.b.Replay(context.Background(), rec, opts, obs)
				if res.Status != RunPassed {
					b.Fatalf("run %s: %s", res.Status, res.ErrorMessage)
				}
				per += obs.last.Sub(obs.first) / (n - 1)
			}
			b.ReportMetric(float64(per.Microseconds())/float64(b.N)/1000, "ms/action")
		})
	}
}

// A frameUrl that is the page's own URL names the main frame.
func TestFrameURLOfTheMainFrame(t *testing.T) {
	t.Parallel()
	page := framesPage(0)
	res, log, _ := replayFrames(t, needBrowser(t), newRec(page, inFrame(clickID("main-btn"), nil, page, 3), inFrame(clickID("main-btn"), nil, page, 3)), quick())
	wantStatus(t, res, RunPassed)
	if log != "main clicked;main clicked;" {
		t.Errorf("frame log %q", log)
	}
}
