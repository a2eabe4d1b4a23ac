package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/cdp"
	"github.com/go-rod/rod/lib/proto"
)

// closeTimeout bounds cleanup calls made after the run's context ended.
const closeTimeout = 5 * time.Second

// errCrashed is wrapped by errors that come from a dead renderer or
// browser; such runs are reported with Result.Crashed.
var errCrashed = errors.New("browser crashed")

// session is one browser context with its single page, attached over a
// flat DevTools session. Its tracker goroutine follows the page's loading
// events; everything else runs on the replay goroutine.
type session struct {
	b         *Browser
	contextID proto.BrowserBrowserContextID
	targetID  proto.TargetTargetID
	sid       proto.TargetSessionID

	// stop ends the tracker and aborts calls in flight (on crash or close).
	stop    context.CancelCauseFunc
	stopped context.Context
	done    chan struct{} // closed when the tracker has returned

	mu  sync.Mutex
	nav navState

	frameSink // screencast frames for a video, when one is recorded

	iframes frameState // iframes, and the current action's (frames.go)

	// health is the selector health of the current action's latest
	// location (replay goroutine only).
	health *SelectorHealth

	guard *guard // the browser's Policy for this session
}

// navState counts main-frame loading events, so that waits can ask "has a
// load started since?" and "has the new document reached
// DOMContentLoaded?".
type navState struct {
	started   int  // Page.frameStartedLoading
	stopped   int  // Page.frameStoppedLoading
	committed int  // Page.frameNavigated (new document)
	docReady  bool // DOMContentLoaded fired for the last committed document
	url       string
	crashed   string // why the page died, "" while alive
	changed   chan struct{}
}

// newSession creates an isolated browser context with one blank page and
// starts following its events. ctx bounds the set-up calls only.
func (b *Browser) newSession(ctx context.Context) (*session, error) {
	g, err := newGuard(b.policy, b.tempDir)
	if err != nil {
		return nil, err
	}
	tracePhase(ctx, "guard")
	bc, err := g.contextParams().Call(b.target(ctx))
	tracePhase(ctx, "context")
	if err != nil {
		g.close()
		return nil, fmt.Errorf("%w: create browser context: %s", errCrashed, cdpMessage(err))
	}
	s := &session{b: b, contextID: bc.BrowserContextID, done: make(chan struct{}), guard: g}
	s.nav.changed = make(chan struct{})
	ok := false
	defer func() {
		if !ok {
			s.dispose()
		}
	}()
	t, err := proto.TargetCreateTarget{URL: "about:blank", BrowserContextID: bc.BrowserContextID}.Call(b.target(ctx))
	if err != nil {
		return nil, fmt.Errorf("%w: create page: %s", errCrashed, cdpMessage(err))
	}
	s.targetID = t.TargetID
	s.nav.url = "about:blank"
	tracePhase(ctx, "page")

	// Subscribe before attaching so no event of the session is missed.
	trackCtx, stop := context.WithCancelCause(context.Background())
	s.stop, s.stopped = stop, trackCtx
	events := b.rod.Context(trackCtx).Event()
	go s.track(events)

	att, err := proto.TargetAttachToTarget{TargetID: t.TargetID, Flatten: true}.Call(b.target(ctx))
	if err != nil {
		return nil, fmt.Errorf("%w: attach to page: %s", errCrashed, cdpMessage(err))
	}
	s.mu.Lock()
	s.sid = att.SessionID
	s.mu.Unlock()
	tracePhase(ctx, "attach")
	c := s.client(ctx)
	type caller interface {
		Call(proto.Client) error
	}
	for _, req := range []caller{
		proto.PageEnable{},
		proto.EmulationSetFocusEmulationEnabled{Enabled: true},
	} {
		if err := req.Call(c); err != nil {
			return nil, fmt.Errorf("%w: set up page: %s", errCrashed, cdpMessage(err))
		}
	}
	tracePhase(ctx, "enable")
	if _, err := (proto.PageAddScriptToEvaluateOnNewDocument{Source: installLocatorJS()}).Call(c); err != nil {
		return nil, fmt.Errorf("%w: set up page: %s", errCrashed, cdpMessage(err))
	}
	tracePhase(ctx, "script")
	if err := autoAttachFrames(c); err != nil {
		return nil, fmt.Errorf("%w: set up page: %s", errCrashed, cdpMessage(err))
	}
	tracePhase(ctx, "page setup")
	if err := g.setUp(ctx, s); err != nil {
		return nil, fmt.Errorf("%w: %s", errCrashed, plain(err.Error()))
	}
	tracePhase(ctx, "policy")
	ok = true
	return s, nil
}

// traceKey carries, in a run's context, a function told as each step of
// the run's start ends (measurements: browser/startup_trace_test.go).
type traceKey struct{}

func tracePhase(ctx context.Context, step string) {
	if f, ok := ctx.Value(traceKey{}).(func(string)); ok {
		f(step)
	}
}

// client returns a DevTools client for the page session bound to ctx; the
// call also ends when the session is stopped (crash or close).
func (s *session) client(ctx context.Context) cdpClient {
	return cdpClient{ctx: ctx, b: s.b.rod, sid: s.sid}
}

// dispose closes the browser context (and its page) and stops the tracker.
func (s *session) dispose() {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = proto.TargetDisposeBrowserContext{BrowserContextID: s.contextID}.Call(s.b.target(ctx))
	if s.stop != nil {
		s.stop(errors.New("session closed"))
		<-s.done
		s.iframes.wg.Wait()
	}
	if s.targetID != "" {
		s.b.rod.RemoveState(s.targetID)
	}
	s.guard.close()
}

// track follows the browser's events for this page until the session stops
// or the connection ends.
func (s *session) track(events <-chan *rod.Message) {
	defer close(s.done)
	for msg := range events {
		s.mu.Lock()
		sid := s.sid
		s.mu.Unlock()
		var crashed proto.TargetTargetCrashed
		if msg.Method == crashed.ProtoEvent() {
			if msg.Load(&crashed) && crashed.TargetID == s.targetID {
				s.crash(fmt.Sprintf("renderer crashed (%s)", crashed.Status))
			}
			continue
		}
		if s.frameEvent(msg, sid) {
			continue
		}
		if s.guard != nil && s.guard.event(s, sid, msg) {
			continue
		}
		if msg.SessionID != sid || sid == "" {
			continue
		}
		s.handle(msg)
	}
	if s.stopped.Err() == nil {
		s.crash("connection to the browser was lost")
	}
}

func (s *session) handle(msg *rod.Message) {
	main := proto.PageFrameID(s.targetID)
	switch msg.Method {
	case "Page.frameStartedLoading":
		var e proto.PageFrameStartedLoading
		if msg.Load(&e) && e.FrameID == main {
			s.update(func(n *navState) { n.started++ })
		}
	case "Page.frameStoppedLoading":
		var e proto.PageFrameStoppedLoading
		if msg.Load(&e) && e.FrameID == main {
			s.update(func(n *navState) { n.stopped++ })
		}
	case "Page.frameNavigated":
		var e proto.PageFrameNavigated
		if msg.Load(&e) && e.Frame != nil && e.Frame.ParentID == "" {
			s.update(func(n *navState) {
				n.committed++
				// A page restored from the back-forward cache does not
				// fire DOMContentLoaded again.
				n.docReady = e.Type == proto.PageNavigationTypeBackForwardCacheRestore
				n.url = e.Frame.URL + e.Frame.URLFragment
			})
		}
	case "Page.navigatedWithinDocument":
		var e proto.PageNavigatedWithinDocument
		if msg.Load(&e) && e.FrameID == main {
			s.update(func(n *navState) { n.url = e.URL })
		}
	case "Page.domContentEventFired":
		s.update(func(n *navState) { n.docReady = true })
	case "Page.screencastFrame":
		var e proto.PageScreencastFrame
		if msg.Load(&e) {
			s.screencastFrame(&e)
		}
	case "Inspector.targetCrashed":
		s.crash("renderer crashed")
	case "Page.javascriptDialogOpening":
		// A dialog blocks the page; accept it as a user clicking OK would
		// (the recorder does not record dialogs).
		var e proto.PageJavascriptDialogOpening
		_ = msg.Load(&e)
		ctx, cancel := context.WithTimeout(s.stopped, closeTimeout)
		_ = proto.PageHandleJavaScriptDialog{Accept: true, PromptText: e.DefaultPrompt}.Call(s.client(ctx))
		cancel()
	}
}

func (s *session) update(f func(*navState)) {
	s.mu.Lock()
	f(&s.nav)
	close(s.nav.changed)
	s.nav.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *session) crash(why string) {
	s.update(func(n *navState) {
		if n.crashed == "" {
			n.crashed = why
		}
	})
	s.stop(fmt.Errorf("%w: %s", errCrashed, why))
}

// state returns a copy of the navigation state.
func (s *session) state() navState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nav
}

// waitState waits until cond holds for the navigation state.
func (s *session) waitState(ctx context.Context, cond func(navState) bool) error {
	for {
		s.mu.Lock()
		n := s.nav
		s.mu.Unlock()
		if n.crashed != "" {
			return fmt.Errorf("%w: %s", errCrashed, n.crashed)
		}
		if cond(n) {
			return nil
		}
		select {
		case <-n.changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stopped.Done():
			return s.interrupted(ctx)
		}
	}
}

// interrupted returns why calls stopped: a crash, or ctx's error. It
// returns nil while neither happened.
func (s *session) interrupted(ctx context.Context) error {
	if c := s.state().crashed; c != "" {
		return fmt.Errorf("%w: %s", errCrashed, c)
	}
	return ctx.Err()
}

// crashErr returns the crash error once the page or browser died, else nil.
func (s *session) crashErr() error {
	if c := s.state().crashed; c != "" {
		return fmt.Errorf("%w: %s", errCrashed, c)
	}
	return nil
}

// pause waits d (real time) or until ctx ends or the session stops.
func (s *session) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped.Done():
		return s.interrupted(ctx)
	}
}

// callCtx derives a context for one call that also ends when the session
// stops, so a crashed renderer never leaves a call hanging.
func (s *session) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.stopped, cancel)
	return ctx, func() { stop(); cancel() }
}

// do runs one DevTools call on the page.
func (s *session) do(ctx context.Context, req interface{ Call(proto.Client) error }) error {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	if err := req.Call(s.client(cctx)); err != nil {
		return s.callError(ctx, err)
	}
	return nil
}

// callError turns a failed call into the error to report: a crash, the
// caller's context error, or the DevTools message in plain text.
func (s *session) callError(ctx context.Context, err error) error {
	if ierr := s.interrupted(ctx); ierr != nil {
		return ierr
	}
	return errors.New(cdpMessage(err))
}

// evalFunc calls the JavaScript function expression fn with args (encoded
// as JSON) in the page's main world, awaits its promise and decodes the
// result into out (which may be nil).
func (s *session) evalFunc(ctx context.Context, fn string, out any, args ...any) error {
	var b strings.Builder
	b.WriteString("(")
	b.WriteString(fn)
	b.WriteString(")(")
	for i, a := range args {
		if i > 0 {
			b.WriteString(",")
		}
		j, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("encode script argument: %w", err)
		}
		b.Write(j)
	}
	b.WriteString(")")
	return s.evalExpr(ctx, b.String(), out)
}

// evalExpr evaluates expr where the current action works (its frame, or
// the main frame) and decodes the result into out (which may be nil).
func (s *session) evalExpr(ctx context.Context, expr string, out any) error {
	res, err := s.evalCurrent(ctx, expr, true)
	if err != nil {
		return err
	}
	if out == nil || res.Result == nil {
		return nil
	}
	if err := json.Unmarshal([]byte(res.Result.Value.JSON("", "")), out); err != nil {
		return fmt.Errorf("decode script result: %w", err)
	}
	return nil
}

// elementObject returns a remote reference to the element the locator
// remembered, for calls that need one (DOM.setFileInputFiles).
func (s *session) elementObject(ctx context.Context) (proto.RuntimeRemoteObjectID, error) {
	res, err := s.evalCurrent(ctx, "window[Symbol.for('saveaction.element')]", false)
	if err != nil {
		return "", err
	}
	if res.Result == nil || res.Result.ObjectID == "" {
		return "", errors.New("element is no longer attached")
	}
	return res.Result.ObjectID, nil
}

func exceptionText(d *proto.RuntimeExceptionDetails) string {
	if d.Exception != nil && d.Exception.Description != "" {
		// The first line holds "TypeError: message"; the rest is a stack.
		line, _, _ := strings.Cut(d.Exception.Description, "\n")
		return "script error: " + line
	}
	return "script error: " + d.Text
}

var ansiCodes = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

// cdpMessage renders an error from a DevTools call as one plain line.
func cdpMessage(err error) string {
	var ce *cdp.Error
	if errors.As(err, &ce) {
		msg := ce.Message
		if ce.Data != "" {
			msg += ": " + ce.Data
		}
		return plain(msg)
	}
	return plain(err.Error())
}

// plain strips terminal escapes and keeps the first line.
func plain(s string) string {
	s = ansiCodes.ReplaceAllString(s, "")
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
