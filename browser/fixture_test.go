package browser

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/saveaction/runner/recording"
)

// The cases of the Node runner's integration suite (REPLAY.md §7), ported
// with checks of what the page shows after the run.

func fixture() string { return fixtureURL("/fixture.html") }

func TestFixtureClicks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		actions []recording.Action
		wantSel []string
		reads   []string
		want    []string
	}{
		{"by id", []recording.Action{clickID("click-btn")}, []string{"id"},
			[]string{text("#click-result"), "getComputedStyle(document.querySelector('#click-result')).display"},
			[]string{"Button clicked successfully!", "block"}},
		{"by data-testid", []recording.Action{click(recording.Selector{DataTestID: "test-btn"})}, []string{"dataTestId"},
			[]string{text("#click-result")}, []string{"Test button clicked!"}},
		{"by aria-label", []recording.Action{click(recording.Selector{AriaLabel: "Delete item"})}, []string{"ariaLabel"},
			[]string{text("#click-result")}, []string{"Delete action triggered!"}},
		{"in sequence", []recording.Action{clickID("click-btn"), click(recording.Selector{DataTestID: "test-btn"}),
			click(recording.Selector{AriaLabel: "Delete item"})}, []string{"id", "dataTestId", "ariaLabel"},
			[]string{text("#click-result")}, []string{"Delete action triggered!"}},
		{"list item", []recording.Action{click(recording.Selector{CSS: ".clickable-item[data-id='2']"})}, []string{"css"},
			[]string{text("#selected-item span"), "document.querySelector('[data-id=\"2\"]').classList.contains('selected')",
				"document.querySelectorAll('.clickable-item.selected').length"},
			[]string{"Item 2", "true", "1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			res, got := replayAndRead(t, newRec(fixture(), c.actions...), quick(), c.reads...)
			wantStatus(t, res, RunPassed)
			for i, sel := range c.wantSel {
				if res.Actions[i].SelectorUsed != sel {
					t.Errorf("action %d selectorUsed = %q, want %q", i, res.Actions[i].SelectorUsed, sel)
				}
			}
			for i := range c.want {
				if got[i] != c.want[i] {
					t.Errorf("%s = %q, want %q", c.reads[i], got[i], c.want[i])
				}
			}
			if res.ActionsExecuted != len(c.actions) || res.ActionsFailed != 0 {
				t.Errorf("executed %d failed %d", res.ActionsExecuted, res.ActionsFailed)
			}
		})
	}
}

func TestFixtureElementNotFound(t *testing.T) {
	t.Parallel()
	opts := quick()
	opts.Timeout = time.Second
	start := time.Now()
	res, got := replayAndRead(t, newRec(fixture(), clickID("no-such-button"), clickID("click-btn")), opts, text("#click-result"))
	wantStatus(t, res, RunFailed)
	a := res.Actions[0]
	if a.Status != StatusFailed || !strings.HasPrefix(a.Error, "element not found: ") || !strings.Contains(a.Error, "no-such-button") {
		t.Fatalf("action 1: %s %q", a.Status, a.Error)
	}
	if res.ErrorActionID != "act_001" || res.ErrorMessage != a.Error {
		t.Errorf("run error %q at %q", res.ErrorMessage, res.ErrorActionID)
	}
	if b := res.Actions[1]; b.Status != StatusSkipped || b.Reason != ReasonPreviousFailed {
		t.Errorf("action 2: %s %q", b.Status, b.Reason)
	}
	if got[0] != "" {
		t.Errorf("the skipped click ran: %q", got[0])
	}
	if res.ActionsExecuted != 1 || res.ActionsFailed != 1 || res.ActionsSkipped != 1 {
		t.Errorf("counts %d/%d/%d", res.ActionsExecuted, res.ActionsFailed, res.ActionsSkipped)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %s with a 1s timeout", d)
	}
}

func value(sel string) string {
	return "document.querySelector(" + quoteJS(sel) + ").value"
}

func quoteJS(s string) string { return "'" + strings.ReplaceAll(s, "'", "\\'") + "'" }

func TestFixtureInputs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		actions []recording.Action
		reads   []string
		want    []string
	}{
		{"by id", []recording.Action{input(recording.Selector{ID: "username"}, "alice")},
			[]string{value("#username")}, []string{"alice"}},
		{"several fields", []recording.Action{
			input(recording.Selector{ID: "username"}, "bob"),
			input(recording.Selector{ID: "email"}, "bob@example.com"),
			input(recording.Selector{ID: "password"}, "s3cret!")},
			[]string{value("#username"), value("#email"), value("#password")},
			[]string{"bob", "bob@example.com", "s3cret!"}},
		{"textarea", []recording.Action{input(recording.Selector{ID: "bio"}, "Line one\nLine two")},
			[]string{value("#bio")}, []string{"Line one\nLine two"}},
		{"by name", []recording.Action{input(recording.Selector{Name: "username"}, "carol")},
			[]string{value("#username")}, []string{"carol"}},
		{"replaces old text", []recording.Action{input(recording.Selector{ID: "username"}, "first"),
			input(recording.Selector{ID: "username"}, "second")},
			[]string{value("#username")}, []string{"second"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			res, got := replayAndRead(t, newRec(fixture(), c.actions...), quick(), c.reads...)
			wantStatus(t, res, RunPassed)
			for i := range c.want {
				if got[i] != c.want[i] {
					t.Errorf("%s = %q, want %q", c.reads[i], got[i], c.want[i])
				}
			}
		})
	}
}

func selectValue(sel recording.Selector, v string) recording.Action {
	return recording.Action{Type: recording.TypeSelect, Selector: &sel, SelectedValue: &v}
}

func TestFixtureSelect(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"us", "uk"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			res, got := replayAndRead(t, newRec(fixture(), selectValue(recording.Selector{ID: "country"}, v)), quick(), value("#country"))
			wantStatus(t, res, RunPassed)
			if got[0] != v {
				t.Errorf("country = %q, want %q", got[0], v)
			}
		})
	}
}

func scrollTo(element string, x, y float64) recording.Action {
	return recording.Action{Type: recording.TypeScroll, ScrollX: &x, ScrollY: &y, Element: []byte(element)}
}

func TestFixtureScrollContainer(t *testing.T) {
	t.Parallel()
	for _, y := range []float64{300, 600} {
		t.Run(strings.TrimSuffix(strings.TrimSuffix(time.Duration(y).String(), "ns"), "s"), func(t *testing.T) {
			t.Parallel()
			res, got := replayAndRead(t, newRec(fixture(), scrollTo(`{"id":"scroll-container"}`, 0, y)), quick(),
				text("#scroll-position"), "document.querySelector('#scroll-container').scrollTop")
			wantStatus(t, res, RunPassed)
			want := strings.TrimSuffix(strings.TrimSuffix(time.Duration(y).String(), "ns"), "s")
			if got[0] != want || got[1] != want {
				t.Errorf("scroll position shown %q, scrollTop %q, want %s", got[0], got[1], want)
			}
			if res.Actions[0].SelectorUsed != "id" {
				t.Errorf("selectorUsed %q", res.Actions[0].SelectorUsed)
			}
		})
	}
}

func checked(b bool) *bool { return &b }

func TestFixtureFormWorkflow(t *testing.T) {
	t.Parallel()
	terms := clickID("terms")
	terms.Checked = checked(true)
	actions := []recording.Action{
		input(recording.Selector{ID: "username"}, "dave"),
		input(recording.Selector{ID: "email"}, "dave@example.com"),
		input(recording.Selector{ID: "password"}, "pw"),
		input(recording.Selector{ID: "bio"}, "Hello"),
		selectValue(recording.Selector{ID: "country"}, "ca"),
		terms,
		click(recording.Selector{CSS: "#test-form button[type=submit]", Text: "Submit Form", Priority: []string{"text", "css"}}),
	}
	res, got := replayAndRead(t, newRec(fixture(), actions...), quick(), text("#form-result"), "location.href",
		"document.querySelector('#terms').checked", "document.querySelector('#newsletter').checked")
	wantStatus(t, res, RunPassed)
	want := `Form submitted: {"username":"dave","email":"dave@example.com","password":"pw","bio":"Hello","country":"ca","terms":"agreed"}`
	if got[0] != want {
		t.Errorf("form result\n got %s\nwant %s", got[0], want)
	}
	if got[1] != fixture() {
		t.Errorf("the page left: %s", got[1])
	}
	if got[2] != "true" || got[3] != "false" {
		t.Errorf("terms %s newsletter %s", got[2], got[3])
	}
	if sel := res.Actions[6].SelectorUsed; sel != "text" {
		t.Errorf("submit button located by %q", sel)
	}
}

func TestFixtureClickThenInput(t *testing.T) {
	t.Parallel()
	res, got := replayAndRead(t, newRec(fixture(), clickID("username"), input(recording.Selector{ID: "username"}, "erin")),
		quick(), value("#username"), "document.activeElement.id")
	wantStatus(t, res, RunPassed)
	if got[0] != "erin" || got[1] != "username" {
		t.Errorf("value %q focus %q", got[0], got[1])
	}
}

func TestFixtureDynamicContent(t *testing.T) {
	t.Parallel()
	res, got := replayAndRead(t, newRec(fixture(), clickID("load-content-btn"), clickID("dynamic-btn")), quick(),
		text("#dynamic-result"), "document.querySelector('#dynamic-content').classList.contains('hidden')")
	wantStatus(t, res, RunPassed)
	if got[0] != "Dynamic button clicked!" || got[1] != "false" {
		t.Errorf("dynamic result %q hidden %s", got[0], got[1])
	}
}

func TestFixtureContinueOnError(t *testing.T) {
	t.Parallel()
	opts := quick()
	opts.Timeout = 2 * time.Second
	opts.ContinueOnError = true
	res, got := replayAndRead(t, newRec(fixture(), clickID("missing"), clickID("click-btn")), opts, text("#click-result"))
	wantStatus(t, res, RunFailed)
	if res.Actions[0].Status != StatusFailed || res.Actions[1].Status != StatusSuccess {
		t.Fatalf("statuses %s", summary(res))
	}
	if got[0] != "Button clicked successfully!" {
		t.Errorf("second click had no effect: %q", got[0])
	}
	if res.ActionsExecuted != 2 || res.ActionsFailed != 1 || res.ActionsSkipped != 0 {
		t.Errorf("counts %d/%d/%d", res.ActionsExecuted, res.ActionsFailed, res.ActionsSkipped)
	}
}

var shotName = regexp.MustCompile(`^run1-chromium-\d{3}-act_\d{3}\.png$`)

func TestFixtureScreenshots(t *testing.T) {
	t.Parallel()
	actions := func() []recording.Action {
		// The middle action fails at once (no timeout to wait out).
		return []recording.Action{clickID("click-btn"), {Type: recording.TypeKeypress, Key: "NoSuchKey"}, clickID("load-content-btn")}
	}
	cases := []struct {
		mode    string
		noDir   bool
		want    []string // file names
		perStep []bool
	}{
		{mode: ScreenshotOnFailure, want: []string{"run1-chromium-002-act_002.png"}, perStep: []bool{false, true, false}},
		{mode: ScreenshotAlways, want: []string{"run1-chromium-001-act_001.png", "run1-chromium-002-act_002.png", "run1-chromium-003-act_003.png"},
			perStep: []bool{true, true, true}},
		{mode: ScreenshotNever, perStep: []bool{false, false, false}},
		{mode: ScreenshotAlways, noDir: true, perStep: []bool{false, false, false}},
	}
	for _, c := range cases {
		name := c.mode
		if c.noDir {
			name = "disabled"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "nested", "shots")
			opts := quick()
			opts.Timeout = 10 * time.Second
			opts.ContinueOnError = true
			opts.ScreenshotMode = c.mode
			if !c.noDir {
				opts.ScreenshotDir = dir
			}
			res, _ := replayAndRead(t, newRec(fixture(), actions()...), opts)
			var names []string
			entries, err := os.ReadDir(dir)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			for _, e := range entries {
				names = append(names, e.Name())
				if !shotName.MatchString(e.Name()) {
					t.Errorf("file name %q", e.Name())
				}
				data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
				if len(data) < 8 || string(data[1:4]) != "PNG" {
					t.Errorf("%s is not a PNG", e.Name())
				}
			}
			if strings.Join(names, ",") != strings.Join(c.want, ",") {
				t.Errorf("files %v, want %v", names, c.want)
			}
			if len(res.Screenshots) != len(c.want) {
				t.Errorf("result lists %v", res.Screenshots)
			}
			for i, a := range res.Actions {
				if (a.ScreenshotPath != "") != c.perStep[i] {
					t.Errorf("action %d screenshot %q", i, a.ScreenshotPath)
				}
				if a.ScreenshotPath != "" && filepath.Dir(a.ScreenshotPath) != dir {
					t.Errorf("screenshot outside the folder: %s", a.ScreenshotPath)
				}
			}
		})
	}
}

func TestFixtureBelowTheFold(t *testing.T) {
	t.Parallel()
	// #terms starts below the fold at 1280x720; clicking it scrolls it into view.
	terms := clickID("terms")
	res, got := replayAndRead(t, newRec(fixture(), terms), quick(),
		"document.querySelector('#terms').checked", "scrollY > 0")
	wantStatus(t, res, RunPassed)
	if got[0] != "true" || got[1] != "true" {
		t.Errorf("checked %s scrolled %s", got[0], got[1])
	}
}
