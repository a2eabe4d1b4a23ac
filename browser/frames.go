package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/proto"
	"github.com/saveaction/runner/recording"
)

// Frames. An action recorded inside an iframe runs its scripts in that
// frame: in an isolated world of the frame's document (the page's own
// scripts cannot see or break ours), through the DevTools session that owns
// the frame: the page's for a same-process frame, the frame's own for an
// out-of-process (cross-site) one, which Chromium reports through
// auto-attach. Pointer events still go to the page, at the element's point
// in the frame plus the frame's offset in the page, as a user's would;
// keys go to the focused frame.

// frameWorld names the isolated world our scripts run in inside frames.
const frameWorld = "saveaction"

// frameLevel is one iframe element on the way from the main frame down to
// an action's frame.
type frameLevel struct {
	sid   proto.TargetSessionID       // session of the document that holds the iframe
	owner proto.RuntimeRemoteObjectID // the iframe element
}

// frameCtx is a resolved frame: where scripts run and how its viewport
// maps to the page's.
type frameCtx struct {
	id    proto.PageFrameID
	sid   proto.TargetSessionID
	world proto.RuntimeExecutionContextID
	chain []frameLevel // outermost first
}

// frameState is the session's knowledge of frames.
type frameState struct {
	mu    sync.Mutex
	oopif map[proto.PageFrameID]proto.TargetSessionID // out-of-process frames and their sessions (tracker writes)
	wg    sync.WaitGroup                              // auto-attach calls on frame sessions in flight

	// The replay goroutine only, below.
	ref   *recording.FrameRef // the current action's frame; nil: the main frame
	cur   *frameCtx           // ref resolved; nil: not yet (or the main frame)
	main  bool                // ref resolved to the main frame (a frameUrl of the page itself)
	byRef map[string]*frameCtx
	byID  map[proto.PageFrameID]*frameCtx
}

// frameMissingError fails an action whose frame did not appear within its
// timeout. It counts as "not found", so optional actions are skipped.
type frameMissingError struct{ desc string }

func (e *frameMissingError) Error() string { return "frame not found: " + e.desc }

func (e *frameMissingError) Is(target error) bool { return target == errNotFound }

// describeFrameRef names a frame reference in messages.
func describeFrameRef(f *recording.FrameRef) string {
	switch {
	case len(f.Selectors) > 0:
		return "frameSelector " + strings.Join(f.Selectors, " >> ")
	case f.URL != "":
		return "frameUrl " + f.URL
	}
	return "any frame"
}

func (f *frameState) key() string {
	if f.ref == nil {
		return ""
	}
	return strings.Join(f.ref.Selectors, "\x00") + "\x01" + f.ref.URL
}

// searching reports whether the current action's element is looked for in
// every frame (it was recorded in a frame we have no selector or URL for).
func (f *frameState) searching() bool {
	return f.ref != nil && len(f.ref.Selectors) == 0 && f.ref.URL == ""
}

// autoAttachFrames asks for the out-of-process frames below session sid.
func autoAttachFrames(c proto.Client) error {
	return proto.TargetSetAutoAttach{AutoAttach: true, WaitForDebuggerOnStart: false, Flatten: true,
		Filter: proto.TargetTargetFilter{{Type: "iframe"}}}.Call(c)
}

// frameEvent follows out-of-process frames attaching and detaching (below
// the page or below another such frame). It reports whether msg was one.
func (s *session) frameEvent(msg *rod.Message, pageSID proto.TargetSessionID) bool {
	switch msg.Method {
	case "Target.attachedToTarget":
		var e proto.TargetAttachedToTarget
		if !msg.Load(&e) || e.TargetInfo == nil || e.TargetInfo.Type != "iframe" || !s.ownsSession(msg.SessionID, pageSID) {
			return true
		}
		s.iframes.mu.Lock()
		if s.iframes.oopif == nil {
			s.iframes.oopif = map[proto.PageFrameID]proto.TargetSessionID{}
		}
		s.iframes.oopif[proto.PageFrameID(e.TargetInfo.TargetID)] = e.SessionID
		s.iframes.mu.Unlock()
		// Frames nested in this one report through its own session. The
		// call runs off the tracker, which must keep reading events.
		s.iframes.wg.Add(1)
		go func() {
			defer s.iframes.wg.Done()
			ctx, cancel := context.WithTimeout(s.stopped, closeTimeout)
			defer cancel()
			_ = autoAttachFrames(cdpClient{ctx: ctx, b: s.b.rod, sid: e.SessionID})
		}()
		return true
	case "Target.detachedFromTarget":
		var e proto.TargetDetachedFromTarget
		if msg.Load(&e) {
			s.iframes.mu.Lock()
			for id, sid := range s.iframes.oopif {
				if sid == e.SessionID {
					delete(s.iframes.oopif, id)
				}
			}
			s.iframes.mu.Unlock()
		}
		return true
	}
	return false
}

// ownsSession reports whether sid is the page's session or a frame's.
func (s *session) ownsSession(sid, pageSID proto.TargetSessionID) bool {
	if sid == pageSID && sid != "" {
		return true
	}
	s.iframes.mu.Lock()
	defer s.iframes.mu.Unlock()
	for _, v := range s.iframes.oopif {
		if v == sid {
			return true
		}
	}
	return false
}

// frameSession returns the session of the out-of-process frame id, or ""
// when the frame is in its parent's process.
func (s *session) frameSession(id proto.PageFrameID) proto.TargetSessionID {
	s.iframes.mu.Lock()
	defer s.iframes.mu.Unlock()
	return s.iframes.oopif[id]
}

// useFrame sets the frame the next calls work in (nil: the main frame).
func (s *session) useFrame(ref *recording.FrameRef) {
	if ref != nil && ref.IsMain() {
		ref = nil
	}
	s.iframes.ref, s.iframes.cur, s.iframes.main = ref, nil, false
}

// dropFrame forgets the current frame's resolution after a call failed in
// it (its document was replaced, say), so that the next call resolves it
// again.
func (s *session) dropFrame() {
	f := &s.iframes
	if f.cur != nil {
		delete(f.byID, f.cur.id)
	}
	delete(f.byRef, f.key())
	f.cur = nil
}

// currentFrame returns the frame the current action works in, resolving it
// once; nil means the main frame. An unresolvable frame is a
// frameMissingError (callers poll).
func (s *session) currentFrame(ctx context.Context) (*frameCtx, error) {
	f := &s.iframes
	if f.ref == nil || f.cur != nil || f.main || f.searching() {
		return f.cur, nil
	}
	if fc := f.byRef[f.key()]; fc != nil {
		f.cur = fc
		return fc, nil
	}
	var fc *frameCtx
	var err error
	if len(f.ref.Selectors) > 0 {
		fc, err = s.frameBySelectors(ctx, f.ref.Selectors)
	} else {
		fc, err = s.frameByURL(ctx, f.ref.URL)
	}
	if err != nil {
		return nil, err
	}
	if fc == nil {
		f.main = true
		return nil, nil
	}
	if f.byRef == nil {
		f.byRef = map[string]*frameCtx{}
	}
	f.byRef[f.key()] = fc
	f.cur = fc
	return fc, nil
}

// frameOwnerJS finds an iframe element by a CSS selector in a document,
// looking into open shadow roots too.
const frameOwnerJS = `(sel) => {
	const find = (root) => {
		const el = root.querySelector(sel);
		if (el) return el;
		for (const h of root.querySelectorAll('*')) if (h.shadowRoot) { const f = find(h.shadowRoot); if (f) return f; }
		return null;
	};
	const el = find(document);
	return el && (el.tagName === 'IFRAME' || el.tagName === 'FRAME') ? el : null;
}`

// frameBySelectors walks down from the main frame, one iframe selector per
// level.
func (s *session) frameBySelectors(ctx context.Context, sels []string) (*frameCtx, error) {
	var cur *frameCtx // main frame
	var chain []frameLevel
	for i, sel := range sels {
		missing := &frameMissingError{desc: "frameSelector " + strings.Join(sels[:i+1], " >> ")}
		arg, _ := json.Marshal(sel)
		res, err := s.evaluate(ctx, cur, "("+frameOwnerJS+")("+string(arg)+")", false)
		if err != nil {
			return nil, err
		}
		if res.Result == nil || res.Result.ObjectID == "" {
			return nil, missing
		}
		sid := s.sid
		if cur != nil {
			sid = cur.sid
		}
		node, err := proto.DOMDescribeNode{ObjectID: res.Result.ObjectID}.Call(s.clientFor(ctx, sid))
		if err != nil {
			return nil, s.callError(ctx, err)
		}
		if node.Node == nil || node.Node.FrameID == "" {
			return nil, missing
		}
		chain = append(chain, frameLevel{sid: sid, owner: res.Result.ObjectID})
		next, err := s.enterFrame(ctx, node.Node.FrameID, sid, chain)
		if err != nil {
			return nil, missing
		}
		cur = next
	}
	return cur, nil
}

// frameInfo is one frame of the page's tree.
type frameInfo struct {
	id, parent proto.PageFrameID
	url        string
}

// listFrames returns every frame of the page, the main frame first, then
// in tree order, out-of-process subtrees included.
func (s *session) listFrames(ctx context.Context) ([]frameInfo, error) {
	sids := []proto.TargetSessionID{s.sid}
	s.iframes.mu.Lock()
	for _, sid := range s.iframes.oopif {
		sids = append(sids, sid)
	}
	s.iframes.mu.Unlock()
	var out []frameInfo
	seen := map[proto.PageFrameID]int{}
	var walk func(t *proto.PageFrameTree)
	walk = func(t *proto.PageFrameTree) {
		if t == nil || t.Frame == nil {
			return
		}
		fi := frameInfo{id: t.Frame.ID, parent: t.Frame.ParentID, url: t.Frame.URL + t.Frame.URLFragment}
		if i, ok := seen[fi.id]; ok {
			// An out-of-process frame shows in its parent's tree too; its
			// own session knows its document.
			if fi.url != "" && fi.url != "about:blank" {
				out[i].url = fi.url
			}
			if out[i].parent == "" {
				out[i].parent = fi.parent
			}
		} else {
			seen[fi.id] = len(out)
			out = append(out, fi)
		}
		for _, c := range t.ChildFrames {
			walk(c)
		}
	}
	for i, sid := range sids {
		tree, err := proto.PageGetFrameTree{}.Call(s.clientFor(ctx, sid))
		if err != nil {
			if i == 0 {
				return nil, s.callError(ctx, err)
			}
			continue // a frame that went away meanwhile
		}
		walk(tree.FrameTree)
	}
	return out, nil
}

// frameByURL finds the frame whose document is at u, compared as
// navigation URLs are (whole, but for the fragment). Nothing looser: a
// frame still loading would otherwise be taken for its sibling.
func (s *session) frameByURL(ctx context.Context, u string) (*frameCtx, error) {
	frames, err := s.listFrames(ctx)
	if err != nil {
		return nil, err
	}
	pick := -1
	for i, f := range frames {
		if sameURL(f.url, u) {
			pick = i
			break
		}
	}
	if pick < 0 {
		return nil, &frameMissingError{desc: "frameUrl " + u}
	}
	fc, err := s.frameByID(ctx, frames, frames[pick].id)
	if err != nil {
		return nil, &frameMissingError{desc: "frameUrl " + u}
	}
	return fc, nil
}

// frameByID enters frame id of the tree frames; nil is the main frame.
func (s *session) frameByID(ctx context.Context, frames []frameInfo, id proto.PageFrameID) (*frameCtx, error) {
	if id == proto.PageFrameID(s.targetID) {
		return nil, nil
	}
	if fc := s.iframes.byID[id]; fc != nil {
		return fc, nil
	}
	parents := map[proto.PageFrameID]proto.PageFrameID{}
	for _, f := range frames {
		parents[f.id] = f.parent
	}
	// The frames from the main frame's child down to id.
	var path []proto.PageFrameID
	for f := id; f != "" && f != proto.PageFrameID(s.targetID); f = parents[f] {
		path = append([]proto.PageFrameID{f}, path...)
		if len(path) > len(frames) {
			return nil, errors.New("frame tree has a cycle")
		}
	}
	var chain []frameLevel
	sid := s.sid // session of the document holding the next iframe
	var fc *frameCtx
	for _, f := range path {
		owner, err := proto.DOMGetFrameOwner{FrameID: f}.Call(s.clientFor(ctx, sid))
		if err != nil {
			return nil, s.callError(ctx, err)
		}
		obj, err := proto.DOMResolveNode{BackendNodeID: owner.BackendNodeID}.Call(s.clientFor(ctx, sid))
		if err != nil {
			return nil, s.callError(ctx, err)
		}
		if obj.Object == nil || obj.Object.ObjectID == "" {
			return nil, errors.New("frame owner not found")
		}
		chain = append(chain, frameLevel{sid: sid, owner: obj.Object.ObjectID})
		if fc, err = s.enterFrame(ctx, f, sid, chain); err != nil {
			return nil, err
		}
		sid = fc.sid
	}
	return fc, nil
}

// enterFrame makes a frame context for frame id, whose iframe element is in
// a document of session parentSID: an isolated world with the locator.
func (s *session) enterFrame(ctx context.Context, id proto.PageFrameID, parentSID proto.TargetSessionID, chain []frameLevel) (*frameCtx, error) {
	f := &s.iframes
	if fc := f.byID[id]; fc != nil {
		return fc, nil
	}
	sid := s.frameSession(id)
	if sid == "" {
		sid = parentSID
	}
	w, err := proto.PageCreateIsolatedWorld{FrameID: id, WorldName: frameWorld}.Call(s.clientFor(ctx, sid))
	if err != nil {
		return nil, s.callError(ctx, err)
	}
	fc := &frameCtx{id: id, sid: sid, world: w.ExecutionContextID, chain: append([]frameLevel(nil), chain...)}
	if _, err := s.evaluate(ctx, fc, installLocatorJS()+" 0", true); err != nil {
		return nil, err
	}
	if f.byID == nil {
		f.byID = map[proto.PageFrameID]*frameCtx{}
	}
	f.byID[id] = fc
	return fc, nil
}

// clientFor is a DevTools client for session sid bound to ctx.
func (s *session) clientFor(ctx context.Context, sid proto.TargetSessionID) cdpClient {
	return cdpClient{ctx: ctx, b: s.b.rod, sid: sid}
}

// evaluate runs expr in frame fc (nil: the main frame's main world) and
// returns the raw result; an exception is an error.
func (s *session) evaluate(ctx context.Context, fc *frameCtx, expr string, byValue bool) (*proto.RuntimeEvaluateResult, error) {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	req := proto.RuntimeEvaluate{Expression: expr, ReturnByValue: byValue, AwaitPromise: true, UserGesture: true}
	c := s.client(cctx)
	if fc != nil {
		req.ContextID = fc.world
		c = s.clientFor(cctx, fc.sid)
	}
	res, err := req.Call(c)
	if err != nil {
		return nil, s.callError(ctx, err)
	}
	if res.ExceptionDetails != nil {
		return nil, errors.New(exceptionText(res.ExceptionDetails))
	}
	return res, nil
}

// evalCurrent evaluates expr where the current action works: its frame,
// or the main frame. A failed call in a frame drops the frame's
// resolution so that the next call finds it again.
func (s *session) evalCurrent(ctx context.Context, expr string, byValue bool) (*proto.RuntimeEvaluateResult, error) {
	fc, err := s.currentFrame(ctx)
	if err != nil {
		return nil, err
	}
	if fc == nil {
		return s.evaluate(ctx, nil, expr, byValue)
	}
	res, err := s.evaluate(ctx, fc, expr, byValue)
	if err != nil && !strings.HasPrefix(err.Error(), "script error: ") && ctx.Err() == nil {
		s.dropFrame()
	}
	return res, err
}

// ownerBoxJS measures an iframe's content box (where its viewport starts)
// in its parent's viewport, scrolling the iframe into view first when it
// is not wholly visible.
//
// After a scroll it waits two animation frames: the browser routes pointer
// events to an out-of-process frame by where the compositor last drew it.
const ownerBoxJS = `async function () {
	if (!this.isConnected) throw new Error('the iframe is no longer attached');
	const r = this.getBoundingClientRect();
	if (r.top < 0 || r.left < 0 || r.bottom > innerHeight || r.right > innerWidth) {
		this.scrollIntoView({ block: 'center', inline: 'center', behavior: 'instant' });
		for (let i = 0; i < 2; i++) await new Promise((res) => { requestAnimationFrame(() => res()); setTimeout(res, 100); });
	}
	const b = this.getBoundingClientRect();
	const st = getComputedStyle(this);
	return [b.left + this.clientLeft + parseFloat(st.paddingLeft), b.top + this.clientTop + parseFloat(st.paddingTop)];
}`

// frameOffset is where the current frame's viewport starts in the page's
// viewport (0, 0 for the main frame).
func (s *session) frameOffset(ctx context.Context) (float64, float64, error) {
	fc := s.iframes.cur
	if fc == nil {
		return 0, 0, nil
	}
	var x, y float64
	for _, l := range fc.chain {
		cctx, cancel := s.callCtx(ctx)
		res, err := proto.RuntimeCallFunctionOn{FunctionDeclaration: ownerBoxJS, ObjectID: l.owner, ReturnByValue: true,
			AwaitPromise: true}.Call(s.clientFor(cctx, l.sid))
		cancel()
		if err != nil {
			s.dropFrame()
			return 0, 0, s.callError(ctx, err)
		}
		if res.ExceptionDetails != nil {
			s.dropFrame()
			return 0, 0, errors.New(exceptionText(res.ExceptionDetails))
		}
		var xy [2]float64
		if res.Result == nil || json.Unmarshal([]byte(res.Result.Value.JSON("", "")), &xy) != nil {
			return 0, 0, fmt.Errorf("measure frame %s: no box", fc.id)
		}
		x, y = x+xy[0], y+xy[1]
	}
	return x, y, nil
}

// searchFrames runs try in each frame of the page in turn (the main frame
// first) until it reports an element there; the frame it found it in
// stays current. It is the locator's call when the action was recorded in
// a frame it cannot name.
func (s *session) searchFrames(ctx context.Context, res *located, try func() error) error {
	frames, err := s.listFrames(ctx)
	if err != nil {
		return err
	}
	var firstErr error
	for _, f := range frames {
		fc, err := s.frameByID(ctx, frames, f.id)
		if err != nil {
			continue // not ready yet; the next poll tries again
		}
		s.iframes.cur = fc
		*res = located{}
		err = try()
		if err == nil && res.State != "notfound" {
			return nil
		}
		if err != nil {
			if fc != nil {
				delete(s.iframes.byID, fc.id)
			}
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	s.iframes.cur = nil
	if firstErr != nil && res.State == "" {
		return firstErr
	}
	return nil
}
