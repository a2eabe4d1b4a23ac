package browser

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saveaction/runner/recording"
)

func actionsPage() string { return fixtureURL("/actions.html") }

// actionCase replays actions on actions.html and checks the last action's
// status and error (or reason), then page reads.
type actionCase struct {
	name    string
	page    string
	actions []recording.Action
	opts    func(*Options)
	status  string // of the last action
	errHas  string // substring of its error or reason
	reads   []string
	want    []string
}

func runActionCases(t *testing.T, cases []actionCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			opts := quick()
			// Cases that must fail wait out their timeout; keep it short.
			// Cases that succeed get room for a loaded machine.
			opts.Timeout = 10 * time.Second
			if c.status != StatusSuccess {
				opts.Timeout = 2 * time.Second
			}
			if c.opts != nil {
				c.opts(&opts)
			}
			page := c.page
			if page == "" {
				page = actionsPage()
			}
			res, got := replayAndRead(t, newRec(page, c.actions...), opts, c.reads...)
			last := res.Actions[len(res.Actions)-1]
			if last.Status != c.status {
				t.Fatalf("last action %s, want %s%s", last.Status, c.status, summary(res))
			}
			for _, a := range res.Actions[:len(res.Actions)-1] {
				if a.Status != StatusSuccess {
					t.Fatalf("setup action failed:%s", summary(res))
				}
			}
			msg := last.Error + last.Reason
			if c.errHas != "" && !strings.Contains(msg, c.errHas) {
				t.Errorf("message %q, want it to contain %q", msg, c.errHas)
			}
			if c.errHas == "" && msg != "" {
				t.Errorf("unexpected message %q", msg)
			}
			if strings.ContainsAny(msg, "\x1b\n") {
				t.Errorf("message is not plain one-line text: %q", msg)
			}
			for i := range c.want {
				if got[i] != c.want[i] {
					t.Errorf("%s = %q, want %q", c.reads[i], got[i], c.want[i])
				}
			}
		})
	}
}

func TestActionClick(t *testing.T) {
	t.Parallel()
	dbl := clickID("dbl-btn")
	dbl.ClickCount = 2
	right := clickID("ctx-btn")
	right.Button = "right"
	mods := clickID("mod-btn")
	mods.Modifiers = []string{"ctrl", "shift"}
	check := clickID("agree")
	check.Checked = checked(true)
	uncheck := clickID("agree")
	uncheck.Checked = checked(false)
	already := clickID("agree")
	already.Checked = checked(false)
	offsetClick := clickID("covered-btn")
	offsetClick.Coordinates = &recording.Point{X: 5, Y: 5}
	offsetClick.CoordinatesRelativeTo = "element"
	runActionCases(t, []actionCase{
		{name: "double click", actions: []recording.Action{dbl}, status: StatusSuccess,
			reads: []string{text("#log"), text("#events")}, want: []string{"double clicked", "click1;click2;"}},
		{name: "right click", actions: []recording.Action{right}, status: StatusSuccess,
			reads: []string{text("#log")}, want: []string{"context menu 2"}},
		{name: "modifiers held", actions: []recording.Action{mods}, status: StatusSuccess,
			reads: []string{text("#log")}, want: []string{"mods ctrl+shift"}},
		{name: "checkbox ends checked then unchecked", actions: []recording.Action{check, uncheck}, status: StatusSuccess,
			reads: []string{"document.querySelector('#agree').checked"}, want: []string{"false"}},
		{name: "checkbox already in state is not toggled", actions: []recording.Action{already}, status: StatusSuccess,
			reads: []string{"document.querySelector('#agree').checked"}, want: []string{"false"}},
		{name: "covered element times out", actions: []recording.Action{offsetClick}, status: StatusTimeout,
			errHas: "covered by span#cover", reads: []string{text("#log")}, want: []string{""}},
		{name: "disabled button times out", actions: []recording.Action{clickID("disabled-btn")}, status: StatusTimeout,
			errHas: "disabled"},
		{name: "moving element times out", actions: []recording.Action{clickID("mover")}, status: StatusTimeout,
			errHas: "not stable"},
		{name: "unknown modifier fails", actions: []recording.Action{func() recording.Action {
			a := clickID("mod-btn")
			a.Modifiers = []string{"hyper"}
			return a
		}()}, status: StatusFailed, errHas: `unknown modifier "hyper"`},
	})
}

func TestActionInput(t *testing.T) {
	t.Parallel()
	typed := input(recording.Selector{ID: "typed"}, "abc")
	typed.TypingDelay = 20
	realistic := func(o *Options) { o.TimingMode = TimingRealistic }
	withVars := func(o *Options) { o.Variables = map[string]string{"USER": "zoe", "PASS": "pw1"} }
	varName := input(recording.Selector{ID: "typed"}, "recorded")
	varName.VariableName = "PASS"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := func(o *Options) { o.FilesDir = dir }
	runActionCases(t, []actionCase{
		{name: "insert fires input and change", actions: []recording.Action{input(recording.Selector{ID: "typed"}, "hey")},
			status: StatusSuccess, reads: []string{value("#typed"), text("#events")}, want: []string{"hey", "input;change;"}},
		{name: "typing delay types key by key", actions: []recording.Action{typed}, opts: realistic, status: StatusSuccess,
			reads: []string{value("#typed"), text("#events")},
			want:  []string{"abc", "keydown:a;input;keydown:b;input;keydown:c;input;change;"}},
		{name: "instant mode types key by key without pauses", actions: []recording.Action{typed}, status: StatusSuccess,
			reads: []string{value("#typed"), text("#events")},
			want:  []string{"abc", "keydown:a;input;keydown:b;input;keydown:c;input;change;"}},
		// The change the action fires is the browser's own: leaving the
		// field afterwards fires no second one.
		{name: "leaving the field fires no second change", actions: []recording.Action{input(recording.Selector{ID: "typed"}, "hey"), clickID("dbl-btn")},
			status: StatusSuccess, reads: []string{text("#events")}, want: []string{"input;change;click1;"}},
		{name: "leaving the field after typing fires no second change", actions: []recording.Action{typed, clickID("dbl-btn")},
			status: StatusSuccess, reads: []string{text("#events")},
			want: []string{"keydown:a;input;keydown:b;input;keydown:c;input;change;click1;"}},
		{name: "variables fill placeholders", actions: []recording.Action{input(recording.Selector{ID: "typed"}, "${USER}:${PASS}")},
			opts: withVars, status: StatusSuccess, reads: []string{value("#typed")}, want: []string{"zoe:pw1"}},
		{name: "variableName replaces the value", actions: []recording.Action{varName}, opts: withVars, status: StatusSuccess,
			reads: []string{value("#typed")}, want: []string{"pw1"}},
		{name: "empty value clears", actions: []recording.Action{input(recording.Selector{ID: "typed"}, "x"), input(recording.Selector{ID: "typed"}, "")},
			status: StatusSuccess, reads: []string{value("#typed")}, want: []string{""}},
		{name: "checkbox by value", actions: []recording.Action{input(recording.Selector{ID: "agree"}, "yes")}, status: StatusSuccess,
			reads: []string{"document.querySelector('#agree').checked"}, want: []string{"true"}},
		{name: "contenteditable", actions: []recording.Action{input(recording.Selector{ID: "editable"}, "new text")}, status: StatusSuccess,
			reads: []string{text("#editable")}, want: []string{"new text"}},
		{name: "file input", actions: []recording.Action{input(recording.Selector{ID: "upload"}, "hello.txt")}, opts: files,
			status: StatusSuccess, reads: []string{"document.querySelector('#upload').files[0].name"}, want: []string{"hello.txt"}},
		{name: "missing file fails", actions: []recording.Action{input(recording.Selector{ID: "upload"}, "nope.txt")}, opts: files,
			status: StatusFailed, errHas: "file to upload not found: " + filepath.Join(dir, "nope.txt")},
		{name: "not a field fails", actions: []recording.Action{input(recording.Selector{ID: "log"}, "x")},
			status: StatusFailed, errHas: "cannot type into p#log"},
	})
}

func TestActionInputWarnsOnUnknownVariable(t *testing.T) {
	t.Parallel()
	res, got := replayAndRead(t, newRec(actionsPage(), input(recording.Selector{ID: "typed"}, "${NOPE}!")), quick(), value("#typed"))
	wantStatus(t, res, RunPassed)
	if got[0] != "${NOPE}!" {
		t.Errorf("value %q", got[0])
	}
	if w := res.Actions[0].Warnings; len(w) != 1 || !strings.Contains(w[0], `"NOPE"`) {
		t.Errorf("warnings %q", w)
	}
}

func intp(i int) *int { return &i }

func TestActionSelect(t *testing.T) {
	t.Parallel()
	sel := recording.Selector{ID: "single"}
	byText := recording.Action{Type: recording.TypeSelect, Selector: &sel, SelectedText: str("Why")}
	byIndex := recording.Action{Type: recording.TypeSelect, Selector: &sel, SelectedIndex: intp(1)}
	msel := recording.Selector{ID: "multi"}
	multi := recording.Action{Type: recording.TypeSelect, Selector: &msel,
		SelectedOptions: []recording.SelectedOption{{Value: "a"}, {Text: "Gamma"}}}
	runActionCases(t, []actionCase{
		{name: "by text", actions: []recording.Action{byText}, status: StatusSuccess, reads: []string{value("#single")}, want: []string{"y"}},
		{name: "by index", actions: []recording.Action{byIndex}, status: StatusSuccess, reads: []string{value("#single")}, want: []string{"x"}},
		{name: "multi", actions: []recording.Action{multi}, status: StatusSuccess,
			reads: []string{"Array.from(document.querySelector('#multi').selectedOptions).map(o => o.value).join(',')"}, want: []string{"a,c"}},
		{name: "missing option fails", actions: []recording.Action{selectValue(sel, "zzz")}, status: StatusFailed,
			errHas: `no option "zzz"`, reads: []string{value("#single")}, want: []string{""}},
		{name: "not a select fails", actions: []recording.Action{selectValue(recording.Selector{ID: "typed"}, "x")},
			status: StatusFailed, errHas: "not a select"},
	})
}

func nav(trigger, to string) recording.Action {
	return recording.Action{Type: recording.TypeNavigation, NavigationTrigger: trigger, To: to}
}

func TestActionNavigation(t *testing.T) {
	t.Parallel()
	about := fixture() + "?page=about"
	contact := fixture() + "?page=contact"
	// Each document load bumps a counter kept across loads of the origin.
	loads := "performance.getEntriesByType('navigation')[0].type + ' ' + history.length"
	runActionCases(t, []actionCase{
		{name: "manual goes there", page: fixture(), actions: []recording.Action{nav("manual", about)}, status: StatusSuccess,
			reads: []string{text("#current-page"), "history.length"}, want: []string{"Current page: about", "2"}},
		{name: "manual already there does nothing", page: about, actions: []recording.Action{nav("manual", about+"#top")}, status: StatusSuccess,
			reads: []string{"history.length"}, want: []string{"1"}},
		{name: "click waits for the link's navigation", page: fixture(), actions: []recording.Action{clickID("about-link"), nav("click", about)},
			status: StatusSuccess, reads: []string{text("#current-page"), loads}, want: []string{"Current page: about", "navigate 2"}},
		{name: "click that did not navigate goes there", page: fixture(), actions: []recording.Action{nav("click", contact)},
			status: StatusSuccess, opts: func(o *Options) { o.Timeout = 500 * time.Millisecond },
			reads: []string{text("#current-page")}, want: []string{"Current page: contact"}},
		{name: "redirect", page: fixtureURL("/redirect"), actions: []recording.Action{nav("redirect", about)}, status: StatusSuccess,
			reads: []string{text("#current-page")}, want: []string{"Current page: about"}},
		{name: "anchor link is same-document", page: fixture(), actions: []recording.Action{clickID("anchor-link"), nav("click", fixture()+"#anchor-target")},
			status: StatusSuccess, reads: []string{"location.hash", "scrollY > 1000"}, want: []string{"#anchor-target", "true"}},
		{name: "back and forward", page: fixture(), actions: []recording.Action{clickID("about-link"), clickID("contact-link"), nav("back", about), nav("forward", contact)},
			status: StatusSuccess, reads: []string{text("#current-page")}, want: []string{"Current page: contact"}},
		{name: "url differing in query is another page", page: about, actions: []recording.Action{nav("manual", contact)}, status: StatusSuccess,
			reads: []string{text("#current-page")}, want: []string{"Current page: contact"}},
		{name: "unreachable fails", page: fixture(), actions: []recording.Action{nav("manual", "http://127.0.0.1:1/")}, status: StatusFailed,
			errHas: "navigate to http://127.0.0.1:1/: net::ERR_"},
		{name: "slow page times out", page: fixture(), actions: []recording.Action{nav("manual", fixtureURL("/slow"))}, status: StatusTimeout,
			opts: func(o *Options) { o.Timeout = 500 * time.Millisecond }, errHas: "timed out"},
	})
}

func TestActionHoverScrollKeypressSubmit(t *testing.T) {
	t.Parallel()
	hover := recording.Action{Type: recording.TypeHover, Selector: &recording.Selector{ID: "hover-target"}}
	key := func(k string, mods ...string) recording.Action {
		return recording.Action{Type: recording.TypeKeypress, Key: k, Modifiers: mods}
	}
	submit := func(sel recording.Selector) recording.Action {
		return recording.Action{Type: recording.TypeSubmit, Selector: &sel}
	}
	runActionCases(t, []actionCase{
		{name: "hover", actions: []recording.Action{hover}, status: StatusSuccess, reads: []string{text("#log")}, want: []string{"hovered"}},
		{name: "hover missing element fails", actions: []recording.Action{{Type: recording.TypeHover, Selector: &recording.Selector{ID: "gone"}}},
			status: StatusFailed, errHas: "element not found"},
		{name: "window scroll", actions: []recording.Action{scrollTo(`"window"`, 0, 500)}, status: StatusSuccess,
			reads: []string{"scrollY"}, want: []string{"500"}},
		{name: "scroll of a missing element fails", actions: []recording.Action{scrollTo(`{"id":"gone"}`, 0, 10)}, status: StatusFailed,
			errHas: "element not found"},
		{name: "keypress with modifiers", actions: []recording.Action{key("k", "ctrl", "alt")}, status: StatusSuccess,
			reads: []string{text("#log")}, want: []string{"key ctrl+alt+k"}},
		{name: "keypress on the focused field", actions: []recording.Action{input(recording.Selector{ID: "typed"}, "ab"), key("Backspace")},
			status: StatusSuccess, reads: []string{value("#typed")}, want: []string{"a"}},
		{name: "enter submits the focused form", actions: []recording.Action{input(recording.Selector{ID: "enter-field"}, "query"), key("Enter")},
			status: StatusSuccess, reads: []string{text("#form-out")}, want: []string{"f3 submitted: query"}},
		{name: "unknown key fails", actions: []recording.Action{key("Hyper")}, status: StatusFailed, errHas: `unknown key "Hyper"`},
		{name: "submit runs handlers", actions: []recording.Action{submit(recording.Selector{ID: "f3"})}, status: StatusSuccess,
			reads: []string{text("#form-out")}, want: []string{"f3 submitted: "}},
		{name: "submit from a field in the form", page: fixture(), actions: []recording.Action{input(recording.Selector{ID: "username"}, "u"), submit(recording.Selector{ID: "username"})},
			status: StatusSuccess, reads: []string{text("#form-result")},
			want: []string{`Form submitted: {"username":"u","email":"","password":"","bio":"","country":""}`}},
		{name: "submit of an invalid form fails", actions: []recording.Action{submit(recording.Selector{ID: "f2"})}, status: StatusFailed,
			errHas: "form is invalid: req:", reads: []string{text("#form-out")}, want: []string{""}},
		{name: "submit outside a form fails", actions: []recording.Action{submit(recording.Selector{ID: "log"})}, status: StatusFailed,
			errHas: "not in a form"},
	})
}

func checkpoint(checkType, expected string, sel *recording.Selector) recording.Action {
	return recording.Action{Type: recording.TypeCheckpoint, CheckType: checkType, ExpectedValue: expected, Selector: sel}
}

func TestActionCheckpoint(t *testing.T) {
	t.Parallel()
	page := fixture()
	short := func(o *Options) { o.Timeout = time.Second }
	urlMatch := recording.Action{Type: recording.TypeCheckpoint, CheckType: "urlMatch", ExpectedURL: page + "#frag"}
	runActionCases(t, []actionCase{
		{name: "urlMatch ignores fragment", page: page + "/", actions: []recording.Action{urlMatch}, status: StatusSuccess},
		{name: "urlMatch fails on other query", page: page + "?page=about", actions: []recording.Action{urlMatch}, status: StatusFailed, opts: short,
			errHas: `checkpoint urlMatch failed: expected "` + page + `#frag", got "` + page + `?page=about"`},
		{name: "urlContains", page: page, actions: []recording.Action{checkpoint("urlContains", "fixture", nil)}, status: StatusSuccess},
		{name: "pageTitle", page: page, actions: []recording.Action{checkpoint("pageTitle", "SaveAction Integration Test Page", nil)}, status: StatusSuccess},
		{name: "pageTitle fails", page: page, actions: []recording.Action{checkpoint("pageTitle", "Other", nil)}, status: StatusFailed, opts: short,
			errHas: `checkpoint pageTitle failed: expected "Other", got "SaveAction Integration Test Page"`},
		{name: "pageLoad", page: page, actions: []recording.Action{checkpoint("pageLoad", "", nil)}, status: StatusSuccess},
		{name: "elementVisible", page: page, actions: []recording.Action{checkpoint("elementVisible", "", &recording.Selector{ID: "click-btn"})}, status: StatusSuccess},
		{name: "elementVisible waits for the effect", page: page, actions: []recording.Action{clickID("load-content-btn"),
			checkpoint("elementVisible", "", &recording.Selector{ID: "dynamic-btn"})}, status: StatusSuccess},
		{name: "elementVisible fails on hidden", page: page, actions: []recording.Action{checkpoint("elementVisible", "", &recording.Selector{ID: "dynamic-btn"})},
			status: StatusFailed, opts: short, errHas: `checkpoint elementVisible failed: expected "visible", got "hidden"`},
		{name: "elementText", page: page, actions: []recording.Action{clickID("click-btn"),
			checkpoint("elementText", "Button clicked successfully!", &recording.Selector{ID: "click-result"})}, status: StatusSuccess},
		{name: "elementText fails", page: page, actions: []recording.Action{checkpoint("elementText", "Nope", &recording.Selector{ID: "current-page"})},
			status: StatusFailed, opts: short, errHas: `checkpoint elementText failed: expected "Nope", got "Current page: home"`},
		{name: "containsText on the page", page: page, actions: []recording.Action{checkpoint("containsText", "Item 2", nil)}, status: StatusSuccess},
		{name: "elementHasValue", page: page, actions: []recording.Action{input(recording.Selector{ID: "username"}, "val"),
			checkpoint("elementHasValue", "val", &recording.Selector{ID: "username"})}, status: StatusSuccess},
		{name: "elementHasValue fails", page: page, actions: []recording.Action{checkpoint("elementHasValue", "val", &recording.Selector{ID: "username"})},
			status: StatusFailed, opts: short, errHas: `checkpoint elementHasValue failed: expected "val", got ""`},
		{name: "element missing", page: page, actions: []recording.Action{checkpoint("elementText", "x", &recording.Selector{ID: "gone"})},
			status: StatusFailed, opts: short, errHas: `got "element not found"`},
		{name: "auto checkpoint skipped", page: page, actions: []recording.Action{{Type: recording.TypeCheckpoint, CheckType: "pageTitle", ExpectedValue: "wrong", Auto: true}},
			status: StatusSkipped, errHas: "auto checkpoint"},
		{name: "auto checkpoint asserted on request", page: page, opts: func(o *Options) { o.AssertAutoCheckpoints = true; o.Timeout = time.Second },
			actions: []recording.Action{{Type: recording.TypeCheckpoint, CheckType: "pageTitle", ExpectedValue: "wrong", Auto: true}},
			status:  StatusFailed, errHas: "checkpoint pageTitle failed"},
	})
}

func TestCheckpointAssertionCounts(t *testing.T) {
	t.Parallel()
	opts := quick()
	opts.Timeout = time.Second
	opts.ContinueOnError = true
	res, _ := replayAndRead(t, newRec(fixture(),
		checkpoint("pageTitle", "SaveAction Integration Test Page", nil),
		checkpoint("pageTitle", "wrong", nil),
		recording.Action{Type: recording.TypeCheckpoint, CheckType: "pageTitle", ExpectedValue: "x", Auto: true},
	), opts)
	if res.Assertions != (Assertions{Total: 2, Passed: 1, Failed: 1}) {
		t.Errorf("assertions %+v", res.Assertions)
	}
}

func TestActionModal(t *testing.T) {
	t.Parallel()
	modal := func(event, id string) recording.Action {
		return recording.Action{Type: recording.TypeModalLifecycle, Event: event, ModalID: id}
	}
	short := func(o *Options) { o.Timeout = 300 * time.Millisecond }
	runActionCases(t, []actionCase{
		{name: "opened then closed", actions: []recording.Action{clickID("open-modal"), modal("modal-opened", "modal"),
			clickID("close-modal"), modal("modal-closed", "modal")}, status: StatusSuccess,
			reads: []string{"document.querySelector('#modal').classList.contains('open')"}, want: []string{"false"}},
		{name: "default role=dialog", actions: []recording.Action{clickID("open-modal"), modal("modal-opened", "")}, status: StatusSuccess},
		{name: "never opens is skipped", actions: []recording.Action{modal("modal-opened", "modal")}, opts: short, status: StatusSkipped,
			errHas: "did not open"},
		{name: "state change skipped", actions: []recording.Action{modal("modal-state-changed", "modal")}, status: StatusSkipped,
			errHas: "not replayed"},
	})
}

func TestUnsupportedAndOptional(t *testing.T) {
	t.Parallel()
	opt := clickID("missing")
	opt.IsOptional = true
	skipNF := click(recording.Selector{CSS: ".missing"})
	skipNF.SkipIfNotFound = true
	opts := quick()
	opts.Timeout = 2 * time.Second // waited out twice; the last click needs far less
	res, got := replayAndRead(t, newRec(fixture(), recording.Action{Type: "drag"}, opt, skipNF, clickID("click-btn")), opts, text("#click-result"))
	wantStatus(t, res, RunPassed)
	if a := res.Actions[0]; a.Status != StatusSkipped || a.Reason != `unsupported action type "drag"` {
		t.Errorf("unknown type: %s %q", a.Status, a.Reason)
	}
	for _, a := range res.Actions[1:3] {
		if a.Status != StatusSkipped || a.Reason == "" {
			t.Errorf("optional: %s %q", a.Status, a.Reason)
		}
	}
	if got[0] != "Button clicked successfully!" || res.ActionsSkipped != 3 || res.ActionsExecuted != 1 {
		t.Errorf("effect %q, skipped %d", got[0], res.ActionsSkipped)
	}
}
