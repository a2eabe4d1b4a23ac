package browser

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/go-rod/rod/lib/proto"
	"github.com/saveaction/runner/recording"
)

// checkpointWait bounds how long a checkpoint retries before it fails
// (within the action's timeout): assertions about the page should hold
// soon after the action they follow, and a failing one should not cost
// the whole action timeout.
const checkpointWait = 5 * time.Second

// setupTimeout is the least time given to opening the browser context and
// loading the start page.
const setupTimeout = 30 * time.Second

// Replay runs one recording in a fresh incognito context of b (one page in
// it), closes the context at the end and returns the result. It never
// panics on bad input. Cancelling ctx ends the run promptly with status
// cancelled and the remaining actions skipped with reason "cancelled". obs
// may be nil.
func (b *Browser) Replay(ctx context.Context, rec *recording.Recording, opts Options, obs Observer) *Result {
	opts = opts.withDefaults()
	r := &replay{b: b, opts: opts, obs: obs, clock: opts.Clock}
	return r.run(ctx, rec)
}

// replay is the state of one Replay call; it lives on one goroutine.
type replay struct {
	b     *Browser
	opts  Options
	obs   Observer
	clock Clock
	s     *session
	res   *Result
	video *videoRecorder
	// secrets are kept out of messages and screenshots (mask.go).
	secrets []string

	// afterRun, when set (tests), runs against the page before its context
	// is closed, to read the page's final state.
	afterRun func(ctx context.Context, s *session)
	// lookFFmpeg, when set (tests), replaces the PATH lookup of ffmpeg.
	lookFFmpeg func() (string, error)
}

func (r *replay) run(ctx context.Context, rec *recording.Recording) (res *Result) {
	res = &Result{StartedAt: r.clock.Now(), Actions: []ActionResult{}, Screenshots: []string{}}
	r.res = res
	defer func() {
		// A bug must fail one run, not the worker.
		if p := recover(); p != nil {
			res.Status = RunFailed
			res.ErrorMessage = fmt.Sprintf("internal error: %v", p)
			r.finish(res)
		}
	}()
	if rec == nil {
		res.Status = RunFailed
		res.ErrorMessage = "no recording"
		r.finish(res)
		return res
	}
	rec = recording.Normalize(rec)
	actions := rec.Actions
	r.secrets = r.collectSecrets(actions)
	res.ActionsTotal = len(actions)

	startFail := func(msg string, crashed bool) *Result {
		res.Crashed = crashed
		status, reason := RunFailed, msg
		if ctx.Err() != nil && !crashed {
			status, reason = RunCancelled, ReasonCancelled
		} else {
			res.ErrorMessage = msg
		}
		res.Status = status
		for i := range actions {
			r.record(ActionResult{ActionID: actions[i].ID, ActionType: actions[i].Type, Index: i,
				Status: StatusSkipped, Reason: reason})
		}
		r.finish(res)
		return res
	}

	if r.b == nil || r.b.rod == nil || !r.b.Alive() {
		return startFail("browser is not running", true)
	}
	// Opening the context and the start page is not an action: it gets at
	// least setupTimeout even when actions have a short timeout.
	setup, cancel := context.WithTimeout(ctx, max(r.opts.Timeout, setupTimeout))
	s, err := r.b.session(setup)
	if err != nil {
		cancel()
		return startFail(plain(err.Error()), ctx.Err() == nil)
	}
	r.s = s
	tracePhase(setup, "session")
	defer func() {
		if r.afterRun != nil {
			ictx, icancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
			r.afterRun(ictx, s)
			icancel()
		}
		tracePhase(ctx, "actions")
		// The actions are over: the next run's spare may be made now,
		// beside this run's wind-down, not beside its actions.
		r.b.refill()
		r.stopVideo()
		s.dispose()
		tracePhase(ctx, "dispose")
	}()
	if err := s.prepare(setup, rec); err != nil {
		cancel()
		return startFail(plain(err.Error()), errors.Is(err, errCrashed))
	}
	tracePhase(setup, "emulation")
	if err := r.maskVideo(setup); err != nil {
		cancel()
		return startFail("mask secrets in the video: "+plain(err.Error()), errors.Is(err, errCrashed))
	}
	r.startVideo(setup)
	tracePhase(setup, "video")
	if err := s.goTo(setup, rec.URL); err != nil {
		cancel()
		return startFail("start page did not load: "+plain(err.Error()), errors.Is(err, errCrashed))
	}
	tracePhase(setup, "start page")
	// The page began at about:blank; history starts at the start page.
	_ = s.do(setup, proto.PageResetNavigationHistory{})
	tracePhase(setup, "history")
	cancel()

	runStart := r.clock.Now()
	var t0 float64
	if len(actions) > 0 {
		t0 = actions[0].Timestamp
	}
	stopReason := ""
	for i := range actions {
		a := &actions[i]
		if stopReason == "" && ctx.Err() != nil {
			stopReason = ReasonCancelled
		}
		if stopReason != "" {
			r.record(ActionResult{ActionID: a.ID, ActionType: a.Type, Index: i, Status: StatusSkipped, Reason: stopReason})
			continue
		}
		if err := r.waitTurn(ctx, runStart, a.Timestamp-t0); err != nil {
			stopReason = ReasonCancelled
			r.record(ActionResult{ActionID: a.ID, ActionType: a.Type, Index: i, Status: StatusSkipped, Reason: stopReason})
			continue
		}
		ar := r.runAction(ctx, i, a)
		switch {
		case ar.Status == StatusSkipped && ar.Reason == ReasonCancelled:
			stopReason = ReasonCancelled
		case res.Crashed:
			stopReason = ReasonPreviousFailed
		case (ar.Status == StatusFailed || ar.Status == StatusTimeout) && !r.opts.ContinueOnError:
			stopReason = ReasonPreviousFailed
		}
		r.record(ar)
	}
	// A refusal after the last action ended still fails the run.
	lateBlock := s.guard.take()
	if lateBlock != nil && ctx.Err() == nil && res.ErrorMessage == "" {
		res.ErrorMessage = plain(lateBlock.Error())
	}
	switch {
	case res.Crashed || res.ActionsFailed > 0 || (lateBlock != nil && ctx.Err() == nil):
		res.Status = RunFailed
	case stopReason == ReasonCancelled:
		res.Status = RunCancelled
	default:
		res.Status = RunPassed
	}
	if stopReason == ReasonCancelled && !res.Crashed {
		res.Status = RunCancelled
	}
	r.finish(res)
	return res
}

// record adds an action result to the run and tells the observer.
func (r *replay) record(ar ActionResult) {
	res := r.res
	ar = r.redactResult(ar)
	if ar.Warnings == nil {
		ar.Warnings = []string{}
	}
	switch ar.Status {
	case StatusSkipped:
		res.ActionsSkipped++
	case StatusFailed, StatusTimeout:
		res.ActionsExecuted++
		res.ActionsFailed++
		if res.ErrorMessage == "" {
			res.ErrorMessage, res.ErrorActionID = ar.Error, ar.ActionID
		}
	default:
		res.ActionsExecuted++
	}
	if ar.ScreenshotPath != "" {
		res.Screenshots = append(res.Screenshots, ar.ScreenshotPath)
	}
	res.Actions = append(res.Actions, ar)
	if r.obs != nil {
		r.obs.ActionDone(ar)
	}
}

func (r *replay) finish(res *Result) {
	res.ErrorMessage = r.redact(res.ErrorMessage)
	res.CompletedAt = r.clock.Now()
	res.DurationMs = res.CompletedAt.Sub(res.StartedAt).Milliseconds()
	res.SelectorHealth = summarizeHealth(res.Actions)
	if res.Status == "" {
		res.Status = RunFailed
	}
}

// waitTurn waits until the action's recorded offset (scaled) since the run
// started, at most MaxActionDelay.
func (r *replay) waitTurn(ctx context.Context, runStart time.Time, offsetMs float64) error {
	scale := r.opts.timingScale()
	if scale == 0 || offsetMs <= 0 || math.IsNaN(offsetMs) {
		return ctx.Err()
	}
	due := runStart.Add(time.Duration(offsetMs * scale * float64(time.Millisecond)))
	wait := due.Sub(r.clock.Now())
	return r.sleep(ctx, wait)
}

// sleep waits d on the run's clock, capped at MaxActionDelay.
func (r *replay) sleep(ctx context.Context, d time.Duration) error {
	if d > r.opts.MaxActionDelay {
		d = r.opts.MaxActionDelay
	}
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-r.clock.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// skipError ends an action as skipped with a reason.
type skipError struct{ reason string }

func (e *skipError) Error() string { return e.reason }

func skip(format string, args ...any) error { return &skipError{reason: fmt.Sprintf(format, args...)} }

// timeoutError marks a wait that ran out of time.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string { return e.msg }

// actionRun collects what an action reports besides its error.
type actionRun struct {
	selectorUsed string
	warnings     []string
	assertion    bool // a checkpoint that was asserted
}

func (ar *actionRun) warn(format string, args ...any) {
	ar.warnings = append(ar.warnings, fmt.Sprintf(format, args...))
}

// runAction executes one action within its timeout and classifies the
// outcome.
func (r *replay) runAction(ctx context.Context, i int, a *recording.Action) ActionResult {
	out := ActionResult{ActionID: a.ID, ActionType: a.Type, Index: i, StartedAt: r.clock.Now()}
	if r.obs != nil {
		r.obs.ActionStarted(i, a)
	}
	actx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	run := &actionRun{}
	if a.Type != recording.TypeNavigation {
		// Navigations are the page's; everything else acts in the frame
		// the action was recorded in.
		frame := a.Frame()
		r.s.useFrame(&frame)
	}
	err := r.execute(actx, a, run)
	r.s.useFrame(nil)
	// A request the policy refused while the action ran (or since the
	// last one) fails it with the rule that refused it.
	if perr := r.s.guard.take(); perr != nil && !errors.Is(err, errCrashed) && ctx.Err() == nil {
		err = perr
	}
	timedOut := actx.Err() != nil && ctx.Err() == nil
	cancel()
	out.CompletedAt = r.clock.Now()
	out.DurationMs = out.CompletedAt.Sub(out.StartedAt).Milliseconds()
	out.SelectorUsed = run.selectorUsed
	out.Warnings = run.warnings
	out.SelectorHealth = r.s.takeHealth()

	var se *skipError
	var cf *checkFailure
	var te *timeoutError
	var nr *notReadyError
	switch {
	case err == nil:
		out.Status = StatusSuccess
	case errors.Is(err, errCrashed):
		out.Status = StatusFailed
		out.Error = plain(err.Error())
		r.res.Crashed = true
	case ctx.Err() != nil:
		out.Status, out.Reason = StatusSkipped, ReasonCancelled
	case isBlocked(err):
		out.Status, out.Error = StatusFailed, plain(err.Error())
	case errors.As(err, &se):
		out.Status, out.Reason = StatusSkipped, se.reason
	case errors.As(err, &cf):
		out.Status, out.Error = StatusFailed, plain(err.Error())
	case errors.Is(err, errNotFound) && (a.IsOptional || a.SkipIfNotFound):
		out.Status, out.Reason = StatusSkipped, "optional element not found"
	case errors.Is(err, errNotFound):
		out.Status, out.Error = StatusFailed, plain(err.Error())
	case errors.As(err, &te), errors.As(err, &nr):
		out.Status, out.Error = StatusTimeout, plain(err.Error())
	case timedOut || errors.Is(err, context.DeadlineExceeded):
		out.Status = StatusTimeout
		out.Error = fmt.Sprintf("timed out after %s: %s", r.opts.Timeout, plain(err.Error()))
	default:
		out.Status, out.Error = StatusFailed, plain(err.Error())
	}
	if run.assertion && out.Status != StatusSkipped {
		r.res.Assertions.Total++
		if out.Status == StatusSuccess {
			r.res.Assertions.Passed++
		} else {
			r.res.Assertions.Failed++
		}
	}
	if out.Status != StatusSkipped && !r.res.Crashed {
		out.ScreenshotPath = r.screenshot(ctx, i, a, out.Status)
	}
	return out
}

// StartFailure is the result of a run that could not begin (the browser
// did not start, say): failed with message, every action skipped with it.
// crashed marks an infrastructure failure (see Result.Crashed).
func StartFailure(rec *recording.Recording, message string, crashed bool) *Result {
	now := time.Now()
	res := &Result{Status: RunFailed, StartedAt: now, CompletedAt: now, ErrorMessage: message,
		Crashed: crashed, Actions: []ActionResult{}, Screenshots: []string{}}
	if rec == nil {
		return res
	}
	for i, a := range recording.Normalize(rec).Actions {
		res.Actions = append(res.Actions, ActionResult{ActionID: a.ID, ActionType: a.Type, Index: i,
			Status: StatusSkipped, Reason: message, Warnings: []string{}})
	}
	res.ActionsTotal = len(res.Actions)
	res.ActionsSkipped = len(res.Actions)
	return res
}
