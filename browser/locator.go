package browser

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/saveaction/runner/recording"
)

//go:embed locator.js
var locatorJS string

// locatorRef is where each new document of a session keeps the locator
// function (installed by installLocator), so that calls send a short
// expression instead of the whole source.
const locatorRef = "window[Symbol.for('saveaction.locate')]"

// installLocatorJS defines the locator in every new document, before the
// page's own scripts run; the property is hidden (a symbol, not
// enumerable).
func installLocatorJS() string {
	return "Object.defineProperty(window, Symbol.for('saveaction.locate'), { value: " +
		strings.TrimSpace(locatorJS) + ", configurable: true, writable: true });"
}

// locatorMissing reports the error of calling the installed locator in a
// document that does not have it (one that existed before installation).
func locatorMissing(err error) bool {
	return err != nil && strings.Contains(err.Error(), "is not a function")
}

// strategy is one way of finding an element, in the form locator.js takes.
type strategy struct {
	Kind    string          `json:"kind"`
	Value   any             `json:"value"`
	Label   string          `json:"label"`
	Exact   bool            `json:"exact,omitempty"`
	Context json.RawMessage `json:"context,omitempty"`
}

// target is what an action acts on: the strategies to try in order and the
// text filter of a legacy textContains.
type target struct {
	Strategies []strategy `json:"strategies"`
	TextFilter string     `json:"textFilter,omitempty"`
}

func (t target) empty() bool { return len(t.Strategies) == 0 }

// describe names the target for error messages.
func (t target) describe() string {
	parts := make([]string, 0, len(t.Strategies))
	for _, s := range t.Strategies {
		v, _ := json.Marshal(s.Value)
		parts = append(parts, s.Label+"="+string(v))
	}
	return strings.Join(parts, ", ")
}

// legacyKinds maps legacy selector keys to locator kinds.
var legacyKinds = map[string]string{
	"id": "id", "dataTestId": "testid", "ariaLabel": "aria", "name": "name", "css": "css",
	"xpath": "xpath", "xpathAbsolute": "xpath", "text": "text", "textContains": "textContains",
	"position": "position",
}

// arrayKinds maps `selectors` array strategies to locator kinds.
var arrayKinds = map[string]string{
	"data-testid": "testid", "id": "id", "aria-label": "aria", "name": "name",
	"href-pattern": "href", "src-pattern": "src", "text-content": "textContent",
	"css-semantic": "semantic", "css": "css", "xpath": "xpath", "position": "position",
	// Spellings seen in exports besides the documented ones.
	"dataTestId": "testid", "testid": "testid", "ariaLabel": "aria", "text": "textContent",
	"xpath-absolute": "xpath",
}

// exactConfidence is the confidence from which a strategy must match one
// element only.
const exactConfidence = 80

// targetOf builds the target of an action: the selectors array first (by
// priority, lower first), then the legacy selector in its priority order.
func targetOf(a *recording.Action) target {
	var t target
	t.Strategies = append(t.Strategies, arrayStrategies(a.Selectors)...)
	if a.Selector != nil {
		legacy, filter := legacyStrategies(a.Selector)
		t.Strategies = append(t.Strategies, legacy...)
		t.TextFilter = filter
	}
	return t
}

func arrayStrategies(entries []recording.SelectorEntry) []strategy {
	idx := make([]int, len(entries))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(x, y int) bool { return entries[idx[x]].Priority < entries[idx[y]].Priority })
	var out []strategy
	for _, i := range idx {
		e := entries[i]
		kind, ok := arrayKinds[e.Strategy]
		if !ok {
			continue
		}
		var v any
		if len(e.Value) == 0 || json.Unmarshal(e.Value, &v) != nil || v == nil || v == "" {
			continue
		}
		if kind != "position" {
			if _, isString := v.(string); !isString {
				continue
			}
		}
		s := strategy{Kind: kind, Value: v, Label: "selectors[" + strconv.Itoa(i) + "]:" + e.Strategy,
			Exact: e.Confidence >= exactConfidence}
		if kind == "textContent" && len(e.Context) > 0 && string(e.Context) != "null" {
			s.Context = e.Context
		}
		out = append(out, s)
	}
	return out
}

func legacyStrategies(sel *recording.Selector) ([]strategy, string) {
	var out []strategy
	for _, key := range recording.SelectorOrder(sel) {
		kind, ok := legacyKinds[key]
		if !ok {
			continue
		}
		var v any
		if key == "position" {
			if sel.Position == nil || sel.Position.Parent == "" {
				continue
			}
			v = sel.Position
		} else {
			v, _ = sel.StrategyValue(key)
		}
		out = append(out, strategy{Kind: kind, Value: v, Label: key})
	}
	return out, sel.TextContains
}

// targetFromJSON reads a selector given as raw JSON: a legacy selector
// object, a selectors array, or a CSS string.
func targetFromJSON(raw json.RawMessage) (target, bool) {
	trimmed := strings.TrimSpace(string(raw))
	switch {
	case trimmed == "" || trimmed == "null":
		return target{}, false
	case strings.HasPrefix(trimmed, "["):
		var entries []recording.SelectorEntry
		if json.Unmarshal(raw, &entries) != nil {
			return target{}, false
		}
		return target{Strategies: arrayStrategies(entries)}, true
	case strings.HasPrefix(trimmed, "{"):
		var sel recording.Selector
		if json.Unmarshal(raw, &sel) != nil {
			return target{}, false
		}
		// A wrapper such as {"selector": {...}} or {"selectors": [...]}.
		var wrap struct {
			Selector  *recording.Selector       `json:"selector"`
			Selectors []recording.SelectorEntry `json:"selectors"`
		}
		_ = json.Unmarshal(raw, &wrap)
		var t target
		t.Strategies = arrayStrategies(wrap.Selectors)
		if wrap.Selector != nil {
			s, f := legacyStrategies(wrap.Selector)
			t.Strategies, t.TextFilter = append(t.Strategies, s...), f
		}
		s, f := legacyStrategies(&sel)
		t.Strategies = append(t.Strategies, s...)
		if t.TextFilter == "" {
			t.TextFilter = f
		}
		return t, !t.empty()
	default:
		var css string
		if json.Unmarshal(raw, &css) != nil || css == "" {
			return target{}, false
		}
		return cssTarget(css), true
	}
}

func cssTarget(css string) target {
	return target{Strategies: []strategy{{Kind: "css", Value: css, Label: "css"}}}
}

// Locate modes of locator.js.
const (
	modeLocate = "locate" // find only
	modeReady  = "ready"  // visible, enabled, stable, scrolled into view
	modePoint  = "point"  // ready and a point that hits the element
	modeVerify = "verify" // the remembered element kept its box and point
)

// located is what locator.js reports.
type located struct {
	State  string   `json:"state"` // ok, notfound, notready
	Reason string   `json:"reason"`
	Tried  []string `json:"tried"`
	// Counts[i] is how many elements strategy i matched (-1: it threw),
	// for the strategies tried in order; Index is the one that matched
	// (-1: none). They feed the action's selector health.
	Counts []int `json:"counts"`
	Index  int   `json:"index"`
	// XPathShadow is set when an XPath strategy found nothing on a page
	// with shadow roots, where XPath cannot look.
	XPathShadow bool     `json:"xpathShadow"`
	Used        string   `json:"used"`
	Count       int      `json:"count"`
	Tag         string   `json:"tag"`
	Desc        string   `json:"desc"`
	Visible     bool     `json:"visible"`
	X           float64  `json:"x"`
	Y           float64  `json:"y"`
	Box         *box     `json:"box"`
	Frame       *float64 `json:"frame"` // document.timeline.currentTime when measured

	// Then and ThenError are the result of a follow-up script run in the
	// same call once the element was ready (see locateThen).
	Then      json.RawMessage `json:"then"`
	ThenError string          `json:"thenError"`
}

// box is an element's bounding box in CSS pixels of the viewport.
type box struct {
	X      float64 `json:"x"`
	Y      float64 `json:"y"`
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
}

// errNotFound is wrapped by locate when no strategy matched in time.
var errNotFound = errors.New("element not found")

// notReadyError is returned when the element was found but never became
// actionable in time; it is a timeout.
type notReadyError struct {
	reason, desc string
}

func (e *notReadyError) Error() string {
	return fmt.Sprintf("timed out waiting for %s: %s", e.desc, e.reason)
}

type locateSpec struct {
	target
	Mode   string   `json:"mode"`
	Offset *offset  `json:"offset,omitempty"`
	Reuse  string   `json:"reuse,omitempty"`
	Box    *box     `json:"box,omitempty"`
	Point  *offset  `json:"point,omitempty"`
	Frame  *float64 `json:"frame,omitempty"`
	// Hover asks verify to see the pointer over the element: in a frame,
	// proof that the browser routes the pointer there (it may not yet,
	// just after the frame moved).
	Hover bool `json:"hover,omitempty"`
}

type offset struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// pollBackoff is the pause between location attempts: short at first, for
// elements that appear right after the previous action, then steady.
func pollBackoff(attempt int) time.Duration {
	steps := []time.Duration{0, 10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}
	if attempt < len(steps) {
		return steps[attempt]
	}
	return 100 * time.Millisecond
}

// locate polls until t matches an element in the given mode or ctx ends.
// The element is remembered in the page for the action's next calls.
func (s *session) locate(ctx context.Context, t target, mode string, off *offset) (*located, error) {
	return s.locateWith(ctx, t, mode, off, nil)
}

// thenWrapper runs the locator and, once the element is ready, a follow-up
// function on it in the same call, saving a round trip per action.
const thenWrapper = `(async (spec, arg) => {
	const out = await %s(spec);
	if (out.state === 'ok') {
		try { out.then = await (%s)(arg); } catch (e) { out.thenError = String(e && e.message || e); }
	}
	return out;
})`

// locateThen is locate followed, in the same call, by the function
// expression then (which works on the remembered element) applied to arg;
// its result is decoded into out. An exception in then is returned as an
// error without retrying.
func (s *session) locateThen(ctx context.Context, t target, mode, then string, arg, out any) (*located, error) {
	fast := fmt.Sprintf(thenWrapper, locatorRef, then)
	full := fmt.Sprintf(thenWrapper, "("+locatorJS+")", then)
	loc, err := s.locateWith(ctx, t, mode, nil, nil, fast, full, arg)
	if err != nil {
		return loc, err
	}
	if loc.ThenError != "" {
		return loc, errors.New(loc.ThenError)
	}
	if out != nil && len(loc.Then) > 0 {
		if err := json.Unmarshal(loc.Then, out); err != nil {
			return loc, fmt.Errorf("decode script result: %w", err)
		}
	}
	return loc, nil
}

// pointAt locates t for a pointer action and moves the mouse over it. The
// element counts as stable when its box is unchanged after the move, which
// the browser delivers with the next animation frame; the point must still
// hit it. It returns the element located at its point, mouse there.
func (s *session) pointAt(ctx context.Context, t target, off *offset) (*located, error) {
	return s.locateWith(ctx, t, modePoint, off, func(loc *located) (*located, error) {
		// In a frame, the point is in the frame's viewport; the pointer
		// moves in the page's.
		ox, oy, err := s.frameOffset(ctx)
		if err != nil {
			return nil, err
		}
		// The move and the check go out together: the browser holds the
		// move for the next frame, and the check waits for that frame too.
		moved := make(chan error, 1)
		go func() { moved <- s.moveMouse(ctx, loc.X+ox, loc.Y+oy, 0) }()
		var v located
		spec := locateSpec{Mode: modeVerify, Reuse: loc.Used, Box: loc.Box, Point: &offset{X: loc.X, Y: loc.Y}, Frame: loc.Frame,
			Hover: s.iframes.cur != nil}
		err = s.callLocator(ctx, &v, spec)
		if merr := <-moved; merr != nil {
			return nil, merr
		}
		if err != nil {
			return nil, err
		}
		v.Count, v.Visible = loc.Count, true
		v.X, v.Y = v.X+ox, v.Y+oy
		return &v, nil
	})
}

// locateWith polls locator.js in mode until it reports an element that is
// ready and then (and was) also passes check, if given.
// callLocator runs the locator with spec, through the installed function
// when the document has it.
func (s *session) callLocator(ctx context.Context, out *located, spec locateSpec) error {
	err := s.evalFunc(ctx, locatorRef, out, spec)
	if locatorMissing(err) {
		err = s.evalFunc(ctx, locatorJS, out, spec)
	}
	return err
}

// fastFullArgs, when given, are a function expression using the installed
// locator, the same using its source, and extra arguments: they replace the
// plain locator call (locateThen).
func (s *session) locateWith(ctx context.Context, t target, mode string, off *offset, check func(*located) (*located, error), fastFullArgs ...any) (*located, error) {
	call := func(res *located, spec locateSpec) error { return s.callLocator(ctx, res, spec) }
	if len(fastFullArgs) > 0 {
		fast, full, extra := fastFullArgs[0].(string), fastFullArgs[1].(string), fastFullArgs[2:]
		call = func(res *located, spec locateSpec) error {
			args := append([]any{spec}, extra...)
			err := s.evalFunc(ctx, fast, res, args...)
			if locatorMissing(err) {
				err = s.evalFunc(ctx, full, res, args...)
			}
			return err
		}
	}
	if t.empty() {
		return nil, errors.New("action has no usable selector")
	}
	if s.iframes.searching() {
		// Recorded in a frame we cannot name: look in every frame.
		inner := call
		call = func(res *located, spec locateSpec) error {
			return s.searchFrames(ctx, res, func() error { return inner(res, spec) })
		}
	}
	spec := locateSpec{target: t, Mode: mode, Offset: off}
	var last *located
	var lastErr error
	for attempt := 0; ; attempt++ {
		if d := pollBackoff(attempt); d > 0 {
			if err := s.pause(ctx, d); err != nil {
				break
			}
		}
		res := &located{}
		err := call(res, spec)
		if err == nil {
			s.noteLocate(t, res)
		}
		if err == nil && res.State == "ok" && check != nil {
			res, err = check(res)
		}
		if err == nil {
			if res.State == "ok" {
				return res, nil
			}
			last, lastErr = res, nil
		} else if ctx.Err() != nil {
			break
		} else {
			lastErr = err
		}
	}
	if err := s.crashErr(); err != nil {
		return nil, err
	}
	var missing *frameMissingError
	switch {
	case last == nil && errors.As(lastErr, &missing):
		return nil, missing
	case last != nil && last.State == "notready":
		return last, &notReadyError{reason: last.Reason, desc: last.Desc}
	case last != nil && last.XPathShadow:
		return nil, fmt.Errorf("%w: %s (XPath does not search inside shadow roots)", errNotFound, t.describe())
	case last != nil:
		return nil, fmt.Errorf("%w: %s", errNotFound, t.describe())
	case lastErr != nil:
		return nil, fmt.Errorf("locate %s: %w", t.describe(), lastErr)
	}
	if f := &s.iframes; f.ref != nil && f.cur == nil && !f.main && !f.searching() {
		// No call got through (a loaded machine): the frame was not
		// reached either.
		return nil, &frameMissingError{desc: describeFrameRef(f.ref)}
	}
	return nil, fmt.Errorf("%w: %s", errNotFound, t.describe())
}
