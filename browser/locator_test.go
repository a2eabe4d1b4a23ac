package browser

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/saveaction/runner/recording"
)

// openPage opens a session on a test page for tests that drive the
// session directly; it is disposed when the test ends.
func openPage(t *testing.T, path string) (*session, context.Context) {
	t.Helper()
	b := needBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	s, err := b.newSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.dispose)
	if err := s.prepare(ctx, &recording.Recording{Viewport: recording.Size{Width: 1280, Height: 720}}); err != nil {
		t.Fatal(err)
	}
	if err := s.goTo(ctx, fixtureURL(path)); err != nil {
		t.Fatal(err)
	}
	return s, ctx
}

// foundText is the text (or id) of the element the locator remembered.
func foundText(t *testing.T, ctx context.Context, s *session) string {
	t.Helper()
	var v string
	if err := s.evalExpr(ctx, `(() => { const el = window[Symbol.for('saveaction.element')];
		return el.id ? '#' + el.id : el.textContent.trim(); })()`, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func entry(strategy string, value any, priority, confidence float64) recording.SelectorEntry {
	v, _ := json.Marshal(value)
	return recording.SelectorEntry{Strategy: strategy, Value: v, Priority: priority, Confidence: confidence}
}

func TestLocatorStrategies(t *testing.T) {
	t.Parallel()
	s, ctx := openPage(t, "/actions.html")
	ctxEntry := entry("text-content", "Pricing", 1, 50)
	ctxEntry.Context = json.RawMessage(`"card primary"`)
	tagEntry := entry("text-content", "Two", 1, 50)
	tagEntry.Context = json.RawMessage(`"li"`)
	cases := []struct {
		name     string
		action   recording.Action
		wantUsed string
		want     string
	}{
		// Legacy selector keys, each alone.
		{"id", clickID("dbl-btn"), "id", "#dbl-btn"},
		{"id escaped", clickID("weird:id.1"), "id", "#weird:id.1"},
		{"dataTestId matches data-test", click(recording.Selector{DataTestID: "dt-btn"}), "dataTestId", "Data test"},
		{"ariaLabel", click(recording.Selector{AriaLabel: "nope"}), "", ""},
		{"name", click(recording.Selector{Name: "typed"}), "name", "#typed"},
		{"css", click(recording.Selector{CSS: "#menu li:nth-child(3)"}), "css", "Three"},
		{"xpath", click(recording.Selector{XPath: "//ul[@id='menu']/li[2]"}), "xpath", "Two"},
		{"xpathAbsolute", click(recording.Selector{XPathAbsolute: "/html/body/button[1]"}), "xpathAbsolute", "#dbl-btn"},
		{"text exact", click(recording.Selector{Text: "  Context "}), "text", "#ctx-btn"},
		{"textContains case-insensitive", click(recording.Selector{TextContains: "HOVER"}), "textContains", "#hover-target"},
		{"position", click(recording.Selector{Position: &recording.Position{Parent: "#menu", Index: 1}}), "position", "Two"},
		// Selectors array strategies, each alone.
		{"data-testid via data-cy", recording.Action{Selectors: []recording.SelectorEntry{entry("data-testid", "cy-btn", 1, 90)}}, "selectors[0]:data-testid", "Data cy"},
		{"array id", recording.Action{Selectors: []recording.SelectorEntry{entry("id", "mod-btn", 1, 95)}}, "selectors[0]:id", "#mod-btn"},
		{"array name", recording.Action{Selectors: []recording.SelectorEntry{entry("name", "q", 1, 70)}}, "selectors[0]:name", "#enter-field"},
		{"href-pattern", recording.Action{Selectors: []recording.SelectorEntry{entry("href-pattern", "getting-started", 1, 60)}}, "selectors[0]:href-pattern", "#docs-link"},
		{"src-pattern", recording.Action{Selectors: []recording.SelectorEntry{entry("src-pattern", "logo-small", 1, 60)}}, "selectors[0]:src-pattern", "#logo"},
		{"text-content with class context", recording.Action{Selectors: []recording.SelectorEntry{ctxEntry}}, "selectors[0]:text-content", "Pricing"},
		{"text-content with tag context", recording.Action{Selectors: []recording.SelectorEntry{tagEntry}}, "selectors[0]:text-content", "Two"},
		{"css-semantic", recording.Action{Selectors: []recording.SelectorEntry{entry("css-semantic", "button.multi:has-text('publish')", 1, 60)}}, "selectors[0]:css-semantic", "Save and publish"},
		{"array css", recording.Action{Selectors: []recording.SelectorEntry{entry("css", "#menu > li:last-child", 1, 60)}}, "selectors[0]:css", "Three"},
		{"array xpath", recording.Action{Selectors: []recording.SelectorEntry{entry("xpath", "//li[text()='One']", 1, 60)}}, "selectors[0]:xpath", "One"},
		{"array position", recording.Action{Selectors: []recording.SelectorEntry{entry("position", map[string]any{"parent": "#menu", "index": 2}, 1, 60)}}, "selectors[0]:position", "Three"},
		// Fallback and ordering.
		{"priority order", click(recording.Selector{ID: "dbl-btn", CSS: "#ctx-btn", Priority: []string{"css", "id"}}), "css", "#ctx-btn"},
		{"priority key without value passed over", click(recording.Selector{CSS: "#ctx-btn", Priority: []string{"id", "dataTestId", "css"}}), "css", "#ctx-btn"},
		{"empty priority means default order", click(recording.Selector{CSS: "#ctx-btn", ID: "mod-btn"}), "id", "#mod-btn"},
		{"fallback to next strategy", click(recording.Selector{ID: "missing", AriaLabel: "missing", CSS: "#menu li"}), "css", "One"},
		{"invalid css passed over", click(recording.Selector{CSS: "button[[", XPath: "//button[@id='dbl-btn']", Priority: []string{"css", "xpath"}}), "xpath", "#dbl-btn"},
		{"selectors before legacy", recording.Action{Selector: &recording.Selector{ID: "dbl-btn"},
			Selectors: []recording.SelectorEntry{entry("id", "ctx-btn", 1, 90)}}, "selectors[0]:id", "#ctx-btn"},
		{"selectors by priority, label keeps index", recording.Action{Selectors: []recording.SelectorEntry{
			entry("id", "dbl-btn", 5, 90), entry("name", "typed", 2, 70), entry("css", "#missing", 1, 60)}}, "selectors[1]:name", "#typed"},
		// Several matches.
		{"high confidence needs one match", recording.Action{Selectors: []recording.SelectorEntry{
			entry("css", "button.dup", 1, 90), entry("id", "ctx-btn", 2, 90)}}, "selectors[1]:id", "#ctx-btn"},
		{"low confidence takes first visible", recording.Action{Selectors: []recording.SelectorEntry{
			entry("css", "button.dup.hidden, #secret-btn, button.dup", 1, 50)}}, "selectors[0]:css", "Same"},
		{"textContains filters a multi-match", click(recording.Selector{CSS: "button.multi", TextContains: "publish"}), "css", "Save and publish"},
	}
	for _, c := range cases {
		a := c.action
		// Found elements return at once; the time is for a loaded machine
		// and for the case that must not match.
		tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		loc, err := s.locate(tctx, targetOf(&a), modeLocate, nil)
		cancel()
		if c.wantUsed == "" {
			if !errors.Is(err, errNotFound) {
				t.Errorf("%s: err = %v, want not found", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if loc.Used != c.wantUsed {
			t.Errorf("%s: used %q, want %q", c.name, loc.Used, c.wantUsed)
		}
		if got := foundText(t, ctx, s); got != c.want {
			t.Errorf("%s: found %q, want %q", c.name, got, c.want)
		}
	}
}

func TestLocatorNoMatchPollsUntilTimeout(t *testing.T) {
	t.Parallel()
	s, ctx := openPage(t, "/actions.html")
	a := click(recording.Selector{ID: "later"})
	// The element appears after 300 ms: polling finds it without a fixed pass.
	if err := s.evalExpr(ctx, `setTimeout(() => { const b = document.createElement('button'); b.id = 'later';
		b.textContent = 'Later'; document.body.prepend(b); }, 300), 0`, nil); err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	start := time.Now()
	loc, err := s.locate(tctx, targetOf(&a), modeLocate, nil)
	cancel()
	if err != nil || loc.Used != "id" {
		t.Fatalf("late element: %v", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
		t.Errorf("found after %s, want soon after 300ms", d)
	}
	missing := click(recording.Selector{ID: "never", CSS: ".never"})
	tctx, cancel = context.WithTimeout(ctx, 400*time.Millisecond)
	start = time.Now()
	_, err = s.locate(tctx, targetOf(&missing), modeLocate, nil)
	cancel()
	if !errors.Is(err, errNotFound) || !strings.Contains(err.Error(), `id="never"`) || !strings.Contains(err.Error(), `css=".never"`) {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d < 350*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %s, want the 400ms timeout", d)
	}
}

func TestLocatorHiddenElementNotRevealed(t *testing.T) {
	t.Parallel()
	s, ctx := openPage(t, "/fixture.html")
	a := clickID("dynamic-btn")
	tctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	loc, err := s.locate(tctx, targetOf(&a), modeLocate, nil)
	cancel()
	if err != nil || loc.Used != "id" || loc.Visible {
		t.Fatalf("locate hidden: %+v %v", loc, err)
	}
	// Acting on it waits for visibility and times out, without clicking
	// anything to reveal it.
	tctx, cancel = context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = s.locate(tctx, targetOf(&a), modePoint, nil)
	cancel()
	var nr *notReadyError
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "not visible") {
		t.Fatalf("err = %v, want not visible", err)
	}
	var state []any
	if err := s.evalExpr(ctx, `[document.querySelector('#dynamic-content').classList.contains('hidden'),
		document.querySelector('#dynamic-result').textContent, document.querySelector('#click-result').textContent]`, &state); err != nil {
		t.Fatal(err)
	}
	if state[0] != true || state[1] != "" || state[2] != "" {
		t.Errorf("the page changed: %v", state)
	}
}

func TestTargetFromJSON(t *testing.T) {
	cases := []struct {
		raw  string
		want string
		ok   bool
	}{
		{`"window"`, `css="window"`, true},
		{`{"id":"a","css":".b"}`, `id="a", css=".b"`, true},
		{`{"selector":{"id":"a"}}`, `id="a"`, true},
		{`[{"strategy":"id","value":"x","priority":1,"confidence":90}]`, `selectors[0]:id="x"`, true},
		{`null`, ``, false},
		{`{}`, ``, false},
	}
	for _, c := range cases {
		got, ok := targetFromJSON(json.RawMessage(c.raw))
		if ok != c.ok || got.describe() != c.want {
			t.Errorf("%s: %q %v, want %q %v", c.raw, got.describe(), ok, c.want, c.ok)
		}
	}
}
