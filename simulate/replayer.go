// Package simulate is a replayer that drives no browser: each action takes
// the time its recording and the run's timing options give it, and fails or
// crashes at configured rates. Workers use it only when WORKER_REPLAYER is
// "simulated", to measure the coordination layer (API, PostgreSQL, Redis
// streams, leases, the cluster) at a scale this machine cannot run browsers
// for. Everything around the replay stays the real thing: the row writer,
// the events, the settle path.
package simulate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/saveaction/runner/browser"
	"github.com/saveaction/runner/recording"
)

// Messages of simulated failures, so tests and the fleet driver tell them
// from real ones.
const (
	FailureMessage = "simulated failure"
	CrashMessage   = "simulated browser crash"
)

// Config configures a Replayer.
type Config struct {
	// FailureRate is the chance (0..1) that a run fails: one of its actions,
	// picked uniformly, ends failed, as a test failure would.
	FailureRate float64
	// CrashRate is the chance (0..1) that an attempt crashes: one of its
	// actions ends with the browser gone (Result.Crashed), and the worker
	// restarts the run on a fresh "browser" as it would after a real crash.
	CrashRate float64
	// ActionTime is how long each executed action takes besides the recorded
	// pauses (0: none). The recorded pauses follow the timing options.
	ActionTime time.Duration
	// Seed makes the draws repeatable (0: random).
	Seed uint64
	// Clock waits and tells the time (nil: the real clock).
	Clock browser.Clock
	// Log, when set, hears when each replay begins and ends (at info
	// level, as ReplayBegan and ReplayEnded with the runId): the fleet
	// driver checks from them that no run replays twice at once.
	Log *slog.Logger
}

// Log messages of a replay's bounds.
const (
	ReplayBegan = "simulated replay began"
	ReplayEnded = "simulated replay ended"
)

// Validate reports a rate outside 0..1.
func (c Config) Validate() error {
	var errs []error
	for _, r := range []struct {
		name string
		v    float64
	}{{"failure rate", c.FailureRate}, {"crash rate", c.CrashRate}} {
		if math.IsNaN(r.v) || r.v < 0 || r.v > 1 {
			errs = append(errs, fmt.Errorf("simulated %s %v: must be from 0 to 1", r.name, r.v))
		}
	}
	if c.ActionTime < 0 {
		errs = append(errs, fmt.Errorf("simulated action time %s: must not be negative", c.ActionTime))
	}
	return errors.Join(errs...)
}

// Replayer replays recordings without a browser. It is safe for concurrent
// use.
type Replayer struct {
	cfg   Config
	clock browser.Clock
	mu    sync.Mutex
	rng   *rand.Rand
}

// New returns a Replayer; cfg must be valid.
func New(cfg Config) (*Replayer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	clock := cfg.Clock
	if clock == nil {
		clock = realClock{}
	}
	return &Replayer{cfg: cfg, clock: clock, rng: rand.New(rand.NewPCG(seed, seed^0x5a5a5a5a))}, nil
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// draw picks what goes wrong in one attempt: the index of the action that
// fails and the one that crashes, -1 for none.
func (r *Replayer) draw(n int) (fail, crash int) {
	fail, crash = -1, -1
	if n == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rng.Float64() < r.cfg.CrashRate {
		crash = r.rng.IntN(n)
	}
	if r.rng.Float64() < r.cfg.FailureRate {
		fail = r.rng.IntN(n)
	}
	return
}

// timingScale is the factor applied to recorded pauses, as the browser's
// replay applies it (browser.Options.TimingEnabled and friends).
func timingScale(o browser.Options) float64 {
	if !o.TimingEnabled {
		return 0
	}
	var s float64
	switch o.TimingMode {
	case browser.TimingInstant:
		return 0
	case browser.TimingFast:
		s = 0.25
	default:
		s = 1
	}
	if o.SpeedMultiplier > 0 {
		s /= o.SpeedMultiplier
	}
	return s
}

// Replay plays rec as the browser's Replay would report it: obs hears of
// every action, the result has the same shape, cancelling ctx ends the run
// with the remaining actions skipped as cancelled.
func (r *Replayer) Replay(ctx context.Context, rec *recording.Recording, opts browser.Options, obs browser.Observer) *browser.Result {
	if r.cfg.Log != nil {
		r.cfg.Log.Info(ReplayBegan, "runId", opts.RunID)
		defer func() { r.cfg.Log.Info(ReplayEnded, "runId", opts.RunID) }()
	}
	res := &browser.Result{StartedAt: r.clock.Now(), Actions: []browser.ActionResult{}, Screenshots: []string{}}
	if rec == nil {
		res.Status, res.ErrorMessage = browser.RunFailed, "no recording"
		return r.finish(res)
	}
	actions := rec.Actions
	res.ActionsTotal = len(actions)
	maxDelay := opts.MaxActionDelay
	if maxDelay <= 0 {
		maxDelay = browser.DefaultMaxActionDelay
	}
	scale := timingScale(opts)
	fail, crash := r.draw(len(actions))
	record := func(ar browser.ActionResult) {
		if ar.Warnings == nil {
			ar.Warnings = []string{}
		}
		switch ar.Status {
		case browser.StatusSkipped:
			res.ActionsSkipped++
		case browser.StatusFailed, browser.StatusTimeout:
			res.ActionsExecuted++
			res.ActionsFailed++
			if res.ErrorMessage == "" {
				res.ErrorMessage, res.ErrorActionID = ar.Error, ar.ActionID
			}
		default:
			res.ActionsExecuted++
		}
		res.Actions = append(res.Actions, ar)
		if obs != nil {
			obs.ActionDone(ar)
		}
	}
	runStart := r.clock.Now()
	var t0 float64
	if len(actions) > 0 {
		t0 = actions[0].Timestamp
	}
	stop := ""
	for i := range actions {
		a := &actions[i]
		skipped := browser.ActionResult{ActionID: a.ID, ActionType: a.Type, Index: i, Status: browser.StatusSkipped}
		if stop == "" && ctx.Err() != nil {
			stop = browser.ReasonCancelled
		}
		if stop == "" && scale > 0 {
			if off := a.Timestamp - t0; off > 0 && !math.IsNaN(off) {
				wait := runStart.Add(time.Duration(off * scale * float64(time.Millisecond))).Sub(r.clock.Now())
				if r.sleep(ctx, min(wait, maxDelay)) != nil {
					stop = browser.ReasonCancelled
				}
			}
		}
		if stop != "" {
			skipped.Reason = stop
			record(skipped)
			continue
		}
		out := browser.ActionResult{ActionID: a.ID, ActionType: a.Type, Index: i, StartedAt: r.clock.Now()}
		if obs != nil {
			obs.ActionStarted(i, a)
		}
		err := r.sleep(ctx, r.cfg.ActionTime)
		if err == nil && a.Type == recording.TypeHover && opts.TimingMode == browser.TimingRealistic && a.Duration > 0 && scale > 0 {
			err = r.sleep(ctx, min(time.Duration(a.Duration*scale*float64(time.Millisecond)), maxDelay))
		}
		out.CompletedAt = r.clock.Now()
		out.DurationMs = out.CompletedAt.Sub(out.StartedAt).Milliseconds()
		switch {
		case err != nil:
			out.Status, out.Reason = browser.StatusSkipped, browser.ReasonCancelled
			stop = browser.ReasonCancelled
		case i == crash:
			out.Status, out.Error = browser.StatusFailed, CrashMessage
			res.Crashed = true
			stop = browser.ReasonPreviousFailed
		case i == fail:
			out.Status, out.Error = browser.StatusFailed, FailureMessage
			if !opts.ContinueOnError {
				stop = browser.ReasonPreviousFailed
			}
		default:
			out.Status = browser.StatusSuccess
			if len(a.Selectors) > 0 || a.Selector != nil {
				out.SelectorUsed = "css"
			}
		}
		record(out)
	}
	switch {
	case res.Crashed || res.ActionsFailed > 0:
		res.Status = browser.RunFailed
	case stop == browser.ReasonCancelled:
		res.Status = browser.RunCancelled
	default:
		res.Status = browser.RunPassed
	}
	if stop == browser.ReasonCancelled && !res.Crashed {
		res.Status = browser.RunCancelled
	}
	return r.finish(res)
}

func (r *Replayer) finish(res *browser.Result) *browser.Result {
	res.CompletedAt = r.clock.Now()
	res.DurationMs = res.CompletedAt.Sub(res.StartedAt).Milliseconds()
	if res.Status == "" {
		res.Status = browser.RunFailed
	}
	return res
}

func (r *Replayer) sleep(ctx context.Context, d time.Duration) error {
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
