package browser

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/saveaction/runner/recording"
)

// checkFailure is a checkpoint whose expectation did not hold.
type checkFailure struct {
	checkType, expected, actual string
}

func (e *checkFailure) Error() string {
	return fmt.Sprintf("checkpoint %s failed: expected %q, got %q", e.checkType, e.expected, e.actual)
}

// checkpoint asserts a manual check, retrying until it holds or
// checkpointWait (within the action's timeout) passes. Auto checkpoints are
// skipped unless AssertAutoCheckpoints is set.
func (r *replay) checkpoint(ctx context.Context, a *recording.Action, run *actionRun) error {
	if a.Auto && !r.opts.AssertAutoCheckpoints {
		return skip(ReasonAutoCheckpoint)
	}
	run.assertion = true
	expected := a.ExpectedValue
	if a.CheckType == "urlMatch" || (a.CheckType == "urlContains" && expected == "") || a.CheckType == "pageLoad" {
		if a.ExpectedURL != "" {
			expected = a.ExpectedURL
		}
	}
	expected = substitute(expected, r.opts.Variables, run)
	cctx, cancel := context.WithTimeout(ctx, min(checkpointWait, r.opts.Timeout))
	defer cancel()
	var last error
	for attempt := 0; ; attempt++ {
		if d := pollBackoff(attempt); d > 0 {
			if err := r.s.pause(cctx, d); err != nil {
				break
			}
		}
		err := r.checkOnce(cctx, a, expected, run)
		var cf *checkFailure
		switch {
		case err == nil:
			return nil
		case errors.As(err, &cf), errors.Is(err, errNotFound):
			last = err // retry; report the latest failed expectation
		case cctx.Err() != nil:
			// The wait ran out during this pass; the previous pass speaks.
		case isContextGone(err):
			// A navigation replaced the document; look again.
		default:
			return err
		}
		if cctx.Err() != nil {
			break
		}
	}
	if last == nil {
		last = fmt.Errorf("checkpoint %s: %w", a.CheckType, cctx.Err())
	}
	if err := r.s.crashErr(); err != nil {
		return err
	}
	var cf *checkFailure
	if errors.As(last, &cf) {
		return last
	}
	if errors.Is(last, errNotFound) {
		return &checkFailure{checkType: a.CheckType, expected: expected, actual: "element not found"}
	}
	return last
}

// checkOnce evaluates the checkpoint once.
func (r *replay) checkOnce(ctx context.Context, a *recording.Action, expected string, run *actionRun) error {
	fail := func(actual string) error {
		return &checkFailure{checkType: a.CheckType, expected: expected, actual: actual}
	}
	// Each element check needs a located element; locate once per pass.
	element := func() (*located, error) {
		t := targetOf(a)
		if t.empty() {
			return nil, fmt.Errorf("checkpoint %s has no selector", a.CheckType)
		}
		var loc located
		find := func() error { return r.s.callLocator(ctx, &loc, locateSpec{target: t, Mode: modeLocate}) }
		if r.s.iframes.searching() {
			inner := find
			find = func() error { return r.s.searchFrames(ctx, &loc, inner) }
		}
		if err := find(); err != nil {
			return nil, err
		}
		r.s.noteLocate(t, &loc)
		if loc.State != "ok" {
			return nil, fmt.Errorf("%w: %s", errNotFound, t.describe())
		}
		run.selectorUsed = loc.Used
		return &loc, nil
	}
	var page struct {
		URL   string `json:"url"`
		Title string `json:"title"`
		Ready string `json:"ready"`
		Text  string `json:"text"`
		Value string `json:"value"`
	}
	pageInfo := func(withBody bool) error {
		return r.s.evalFunc(ctx, `(withBody) => {
			const el = window[Symbol.for('saveaction.element')];
			return { url: location.href, title: document.title, ready: document.readyState,
				text: withBody ? (document.body ? document.body.innerText : '') : (el && el.isConnected ? (el.innerText || el.textContent || '') : ''),
				value: el && el.isConnected && 'value' in el ? String(el.value) : '' };
		}`, &page, withBody)
	}
	norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }

	switch a.CheckType {
	case "urlMatch":
		u := r.s.state().url
		if !sameURL(u, expected) {
			return fail(u)
		}
	case "urlContains":
		u := r.s.state().url
		if !strings.Contains(u, expected) {
			return fail(u)
		}
	case "pageTitle":
		if err := pageInfo(false); err != nil {
			return err
		}
		if norm(page.Title) != norm(expected) {
			return fail(page.Title)
		}
	case "pageLoad":
		if err := pageInfo(false); err != nil {
			return err
		}
		if page.Ready == "loading" {
			return fail("loading")
		}
		if a.ExpectedURL != "" && !sameURL(r.s.state().url, a.ExpectedURL) {
			return fail(r.s.state().url)
		}
	case "elementVisible":
		loc, err := element()
		if err != nil {
			if errors.Is(err, errNotFound) {
				return fail("not found")
			}
			return err
		}
		if !loc.Visible {
			return &checkFailure{checkType: a.CheckType, expected: "visible", actual: "hidden"}
		}
	case "elementText", "containsText":
		withBody := a.CheckType == "containsText" && targetOf(a).empty()
		if !withBody {
			if _, err := element(); err != nil {
				return err
			}
		}
		if err := pageInfo(withBody); err != nil {
			return err
		}
		got, want := norm(page.Text), norm(expected)
		if a.CheckType == "elementText" && got != want {
			return fail(got)
		}
		if a.CheckType == "containsText" && !strings.Contains(got, want) {
			if len(got) > 200 {
				got = got[:200] + "..."
			}
			return fail(got)
		}
	case "elementHasValue":
		if _, err := element(); err != nil {
			return err
		}
		if err := pageInfo(false); err != nil {
			return err
		}
		if page.Value != expected {
			return fail(page.Value)
		}
	default:
		return skip("unsupported checkpoint type %q", a.CheckType)
	}
	return nil
}
