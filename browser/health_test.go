package browser

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/saveaction/runner/recording"
)

// Recordings whose primary selector went stale or matches several
// elements: the run passes through a fallback, and the health report says
// which selectors will break next. Each runs in instant and realistic mode.
func TestSelectorHealth(t *testing.T) {
	t.Parallel()
	stale := click(recording.Selector{ID: "old-click-btn", CSS: "#click-section #click-btn", Priority: []string{"id", "css"}})
	healthy := clickID("click-btn")
	// Two "Item" list entries match the text; a confidence of 90 demands
	// exactly one, so the id-less fallback (css) is used.
	exact := recording.Action{Type: recording.TypeClick, Selectors: []recording.SelectorEntry{
		entry("css", ".clickable-item", 1, 90), entry("css", ".clickable-item[data-id='3']", 2, 70)}}
	// A low-confidence primary that matches three elements is used (the
	// first visible) but flagged ambiguous.
	loose := recording.Action{Type: recording.TypeClick, Selectors: []recording.SelectorEntry{
		entry("css", ".clickable-item", 1, 40)}}
	gone := click(recording.Selector{ID: "removed", CSS: ".removed-too", Priority: []string{"id", "css"}})
	gone.IsOptional = true
	type want struct {
		strategy  string
		position  int
		failed    []string
		stale     bool
		ambiguous bool
	}
	wants := []want{
		{strategy: "css", position: 1, failed: []string{"id (no match)"}, stale: true},
		{strategy: "id", position: 0, failed: []string{}},
		{strategy: "selectors[1]:css", position: 1, failed: []string{"selectors[0]:css (3 matches, needs exactly one)"}, ambiguous: true},
		{strategy: "selectors[0]:css", position: 0, failed: []string{}, ambiguous: true},
		{strategy: "", position: -1, failed: []string{"id (no match)", "css (no match)"}, stale: true},
	}
	for _, mode := range []string{TimingInstant, TimingRealistic} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			opts := quick()
			opts.TimingMode = mode
			opts.Timeout = 2 * time.Second
			res, got := replayAndRead(t, newRec(fixture(), stale, healthy, exact, loose, gone), opts,
				text("#click-result"), text("#selected-item span"))
			wantStatus(t, res, RunPassed)
			if got[0] != "Button clicked successfully!" || got[1] != "Item 1" {
				t.Errorf("page shows %q and %q", got[0], got[1])
			}
			for i, w := range wants {
				h := res.Actions[i].SelectorHealth
				if h == nil {
					t.Fatalf("action %d has no selector health%s", i, summary(res))
				}
				if h.Strategy != w.strategy || h.Position != w.position || h.Stale != w.stale || h.Ambiguous != w.ambiguous ||
					strings.Join(h.Failed, ",") != strings.Join(w.failed, ",") {
					t.Errorf("action %d health %+v, want %+v", i, *h, w)
				}
				if h.Strategy != res.Actions[i].SelectorUsed {
					t.Errorf("action %d: health strategy %q, selectorUsed %q", i, h.Strategy, res.Actions[i].SelectorUsed)
				}
			}
			sum := res.SelectorHealth
			if sum.Located != 5 || sum.Primary != 2 || sum.Fallback != 2 || sum.NotFound != 1 {
				t.Errorf("summary counts %+v", sum)
			}
			var staleIDs, ambIDs []string
			for _, n := range sum.Stale {
				staleIDs = append(staleIDs, n.ActionID)
			}
			for _, n := range sum.Ambiguous {
				ambIDs = append(ambIDs, n.ActionID)
			}
			if strings.Join(staleIDs, ",") != "act_001,act_005" || strings.Join(ambIDs, ",") != "act_003,act_004" {
				t.Errorf("stale %v ambiguous %v", staleIDs, ambIDs)
			}
			if n := sum.Stale[0]; n.Primary != "id" || n.Strategy != "css" || n.Index != 0 {
				t.Errorf("stale note %+v", n)
			}
		})
	}
}

func TestSelectorHealthJSON(t *testing.T) {
	t.Parallel()
	// A run that never started still reports an empty summary, not null.
	res := StartFailure(newRec(fixture(), clickID("x")), "browser did not start", true)
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"selectorHealth":{"located":0,"primary":0,"fallback":0,"notFound":0,"stale":[],"ambiguous":[]}`) {
		t.Errorf("run JSON %s", b)
	}
	// An action without a located element has no selectorHealth key; one
	// with it carries the report.
	a, _ := json.Marshal(ActionResult{ActionID: "act_001"})
	if strings.Contains(string(a), "selectorHealth") {
		t.Errorf("action JSON %s", a)
	}
	a, _ = json.Marshal(ActionResult{ActionID: "act_001", SelectorHealth: &SelectorHealth{Primary: "id", Strategy: "css", Position: 1,
		Failed: []string{"id (no match)"}, Stale: true}})
	if !strings.Contains(string(a), `"selectorHealth":{"primary":"id","strategy":"css","position":1,"matches":0,"failed":["id (no match)"],"stale":true,"ambiguous":false}`) {
		t.Errorf("action JSON %s", a)
	}
}
