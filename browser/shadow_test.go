package browser

import (
	"strings"
	"testing"
	"time"

	"github.com/saveaction/runner/recording"
)

// deep reads a property of an element inside <outer-card>'s <inner-form>,
// two open shadow roots down.
func deep(sel, prop string) string {
	return "document.querySelector('outer-card').shadowRoot.querySelector('inner-form').shadowRoot.querySelector(" +
		quoteJS(sel) + ")." + prop
}

// Every case runs in instant and in realistic mode.
func TestShadowDOM(t *testing.T) {
	t.Parallel()
	page := fixtureURL("/shadow.html")
	cases := []struct {
		name    string
		actions []recording.Action
		status  string // of the last action
		errHas  string
		used    string
		reads   []string
		want    []string
	}{
		{name: "css two roots deep", actions: []recording.Action{click(recording.Selector{CSS: "#deep-btn"})}, status: StatusSuccess,
			used: "css", reads: []string{text("#log"), deep("#deep-out", "textContent")}, want: []string{"deep button clicked", "deep clicked"}},
		{name: "id", actions: []recording.Action{clickID("deep-btn")}, status: StatusSuccess,
			used: "id", reads: []string{text("#log")}, want: []string{"deep button clicked"}},
		{name: "data-testid", actions: []recording.Action{click(recording.Selector{DataTestID: "deep-testid"})}, status: StatusSuccess,
			used: "dataTestId", reads: []string{text("#log")}, want: []string{"deep button clicked"}},
		{name: "text", actions: []recording.Action{click(recording.Selector{Text: "Deep button"})}, status: StatusSuccess,
			used: "text", reads: []string{text("#log")}, want: []string{"deep button clicked"}},
		{name: "aria-label one root deep", actions: []recording.Action{click(recording.Selector{AriaLabel: "Card action"})}, status: StatusSuccess,
			used: "ariaLabel", reads: []string{text("#log")}, want: []string{"card action"}},
		{name: "typing into a deep input", actions: []recording.Action{typeInto("deep-input", "héllo", 10)}, status: StatusSuccess,
			used: "id", reads: []string{text("#log"), deep("#deep-input", "value"), deep("#deep-out", "textContent")},
			want: []string{"deep input: héllo", "héllo", "héllo"}},
		{name: "one-shot input into a deep input", actions: []recording.Action{input(recording.Selector{Name: "deep"}, "set")}, status: StatusSuccess,
			used: "name", reads: []string{text("#log"), deep("#deep-input", "value")}, want: []string{"deep input: set", "set"}},
		{name: "light DOM still first", actions: []recording.Action{click(recording.Selector{CSS: "button", Text: "Light button", Priority: []string{"text"}})},
			status: StatusSuccess, used: "text", reads: []string{text("#log")}, want: []string{""}},
		{name: "xpath stays in the light DOM and says so", actions: []recording.Action{click(recording.Selector{XPath: "//button[@id='deep-btn']"})},
			status: StatusFailed, errHas: "XPath does not search inside shadow roots", reads: []string{text("#log")}, want: []string{""}},
		{name: "closed shadow root is out of reach", actions: []recording.Action{clickID("closed-btn")},
			status: StatusFailed, errHas: "element not found"},
	}
	for _, mode := range []string{TimingInstant, TimingRealistic} {
		for _, c := range cases {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				opts := quick()
				opts.TimingMode = mode
				opts.Timeout = 10 * time.Second
				if c.status != StatusSuccess {
					opts.Timeout = time.Second
				}
				res, got := replayAndRead(t, newRec(page, c.actions...), opts, c.reads...)
				last := res.Actions[len(res.Actions)-1]
				if last.Status != c.status {
					t.Fatalf("status %s, want %s%s", last.Status, c.status, summary(res))
				}
				if c.errHas != "" && !strings.Contains(last.Error, c.errHas) {
					t.Errorf("error %q, want it to contain %q", last.Error, c.errHas)
				}
				if c.used != "" && last.SelectorUsed != c.used {
					t.Errorf("selectorUsed %q, want %q", last.SelectorUsed, c.used)
				}
				for i := range c.want {
					if got[i] != c.want[i] {
						t.Errorf("%s = %q, want %q", c.reads[i], got[i], c.want[i])
					}
				}
			})
		}
	}
}
