package browser

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/saveaction/runner/recording"
)

// env is shared by the package's tests: one browser and one fixture
// server, so that each test only pays for a fresh incognito context.
type env struct {
	b      *Browser
	srv    *httptest.Server
	skip   string
	launch time.Duration
}

var shared env // set once in TestMain, read-only afterwards

func TestMain(m *testing.M) {
	shared.srv = httptest.NewServer(fixtureHandler())
	if _, err := FindChrome(); err != nil {
		shared.skip = err.Error()
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		start := time.Now()
		b, err := Launch(ctx, LaunchOptions{Headless: true})
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "launch chromium:", err)
			os.Exit(1)
		}
		shared.b, shared.launch = b, time.Since(start)
	}
	code := m.Run()
	if shared.b != nil {
		_ = shared.b.Close()
	}
	shared.srv.Close()
	os.Exit(code)
}

// fixtureHandler serves testdata/ plus a few pages the tests need.
func fixtureHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServer(http.Dir("testdata")))
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/fixture.html?page=about", http.StatusFound)
	})
	// /delayed.js?ms=N is an empty script sent after N milliseconds.
	mux.HandleFunc("/delayed.js", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-r.Context().Done():
		case <-time.After(time.Duration(ms) * time.Millisecond):
		}
		w.Header().Set("Content-Type", "text/javascript")
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	return mux
}

func needBrowser(t testing.TB) *Browser {
	t.Helper()
	if shared.skip != "" {
		t.Skip(shared.skip)
	}
	return shared.b
}

// fixtureURL is the address of a test page.
func fixtureURL(path string) string { return shared.srv.URL + path }

// newRec builds a recording of the given actions, numbering them act_001...
// and spacing their timestamps 100 ms apart unless set.
func newRec(url string, actions ...recording.Action) *recording.Recording {
	r := &recording.Recording{ID: "rec_1", Version: "1.0.0", TestName: "test", URL: url,
		Viewport: recording.Size{Width: 1280, Height: 720}}
	for i, a := range actions {
		if a.ID == "" {
			a.ID = fmt.Sprintf("act_%03d", i+1)
		}
		if a.Timestamp == 0 {
			a.Timestamp = float64(i * 100)
		}
		if a.URL == "" {
			a.URL = url
		}
		r.Actions = append(r.Actions, a)
	}
	return r
}

func str(s string) *string { return &s }

func click(sel recording.Selector) recording.Action {
	return recording.Action{Type: recording.TypeClick, Selector: &sel}
}

func clickID(id string) recording.Action { return click(recording.Selector{ID: id}) }

func input(sel recording.Selector, v string) recording.Action {
	return recording.Action{Type: recording.TypeInput, Selector: &sel, Value: &v}
}

// quick are options for fast tests: instant timing, short timeout.
func quick() Options {
	return Options{RunID: "run1", Timeout: 3 * time.Second, TimingEnabled: true, TimingMode: TimingInstant}
}

// replayAndRead replays rec and then evaluates each script expression in
// the page before its context closes, returning the values.
func replayAndRead(t *testing.T, rec *recording.Recording, opts Options, reads ...string) (*Result, []string) {
	t.Helper()
	b := needBrowser(t)
	got := make([]string, len(reads))
	r := &replay{b: b, opts: opts.withDefaults()}
	r.clock = r.opts.Clock
	r.afterRun = func(ctx context.Context, s *session) {
		for i, expr := range reads {
			var v any
			if err := s.evalExpr(ctx, expr, &v); err != nil {
				got[i] = "error: " + err.Error()
				continue
			}
			got[i] = fmt.Sprint(v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res := r.run(ctx, rec)
	return res, got
}

// text is a read of an element's text content.
func text(sel string) string {
	return fmt.Sprintf("(document.querySelector(%q) || {}).textContent", sel)
}

func wantStatus(t *testing.T, res *Result, status string) {
	t.Helper()
	if res.Status != status {
		t.Fatalf("status = %s, want %s; error %q; actions %s", res.Status, status, res.ErrorMessage, summary(res))
	}
}

func summary(res *Result) string {
	s := ""
	for _, a := range res.Actions {
		s += fmt.Sprintf("\n  %s %s %s sel=%s err=%q reason=%q warn=%v", a.ActionID, a.ActionType, a.Status, a.SelectorUsed, a.Error, a.Reason, a.Warnings)
	}
	return s
}
