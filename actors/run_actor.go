package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/saveaction/runner/browser"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue"
	"github.com/saveaction/runner/recording"
)

// Causes of a run context's end, so the attempt knows what to do after.
var (
	errCancelled = errors.New("cancelled")
	errLeaseLost = errors.New("lease lost")
	errHandBack  = errors.New("worker shutting down")
)

// dbTimeout bounds each database call of a run; a write that cannot finish
// in this time is treated as lost and the lease machinery takes over.
const dbTimeout = 10 * time.Second

// missingRunGrace is how long an entry's run row may take to appear.
const missingRunGrace = 3 * time.Second

// Local messages of a run actor (never cross nodes).
type (
	attemptStarted struct {
		attempt int
		total   int
	}
	actionProgress struct{ done int }
	attemptDone    struct {
		crash   error
		outcome string // finished status, or "" when the attempt did not finish the run
	}
	// handBack asks a run actor to stop its attempt and give the run back
	// to the queue (graceful shutdown after the grace period).
	handBack struct{}
)

// crashReason is the panic value a run actor fails with after its browser
// died under it; the coordinator's supervisor restarts it as the next attempt.
type crashReason struct{ err error }

func (c crashReason) String() string { return c.err.Error() }

// runActor owns one run: it starts an attempt, lets the replay run off the
// mailbox, and answers cancel and status messages at once.
type runActor struct {
	d     *Deps
	entry queue.Entry

	attempt     int
	total, done int
	cancel      context.CancelCauseFunc
	finished    bool
	crash       error
	cancelAt    time.Time
}

func newRunActor(d *Deps, e queue.Entry) actor.Producer {
	return func() actor.Actor { return &runActor{d: d, entry: e} }
}

func (a *runActor) log() *slog.Logger {
	return a.d.Log.With("runId", a.entry.RunID.String(), "attempt", a.attempt, "worker", a.d.Worker)
}

// Receive handles the actor's messages.
func (a *runActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		runCtx, cancel := context.WithCancelCause(context.Background())
		a.cancel = cancel
		go a.execute(runCtx, ctx.ActorSystem(), ctx.Self())
	case *actor.Restarting:
		a.d.Metrics.ActorRestarts.Inc()
		a.log().Warn("run restarts on a fresh browser", "error", a.crash)
	case *attemptStarted:
		a.attempt, a.total = msg.attempt, msg.total
	case *actionProgress:
		a.done = msg.done
	case *CancelRun:
		accepted := a.cancel != nil && !a.finished
		if accepted {
			a.cancelAt = time.Now()
			if msg.RequestedAtUnixMs > 0 {
				a.cancelAt = time.UnixMilli(msg.RequestedAtUnixMs)
			}
			a.cancel(errCancelled)
		}
		if ctx.Sender() != nil {
			ctx.Respond(&CancelRunResponse{RunId: a.entry.RunID.String(), Accepted: accepted})
		}
	case *RunStatusRequest:
		if ctx.Sender() != nil {
			ctx.Respond(&RunStatusResponse{RunId: a.entry.RunID.String(), Attempt: int32(a.attempt),
				ActionsDone: int32(a.done), ActionsTotal: int32(a.total), Worker: a.d.Worker})
		}
	case *handBack:
		if a.cancel != nil && !a.finished {
			a.cancel(errHandBack)
		}
	case *attemptDone:
		if msg.crash != nil {
			a.crash = msg.crash
			a.d.signal(Event{Kind: "crashed", RunID: a.entry.RunID.String(), Attempt: a.attempt, Detail: msg.crash.Error()})
			panic(crashReason{msg.crash})
		}
		a.finished = true
		ctx.Stop(ctx.Self())
	case *actor.Stopping:
		if a.cancel != nil && !a.finished && a.crash == nil {
			a.cancel(errHandBack)
		}
	case *actor.Stopped:
		if a.crash != nil && !a.finished {
			// The supervisor gave up: the crash budget is spent.
			a.failAfterCrashes()
		}
	}
}

// failAfterCrashes ends the run with the last crash as its error.
func (a *runActor) failAfterCrashes() {
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	msg := "browser crashed: " + a.crash.Error()
	if err := a.d.Runs.Fail(ctx, a.entry.RunID, persistence.StatusRunning, a.attempt, msg); err != nil && !errors.Is(err, persistence.ErrStale) {
		a.log().Error("fail crashed run", "error", err)
		return
	}
	if err := a.d.Queue.Ack(ctx, a.entry.ID); err != nil {
		a.log().Warn("ack crashed run", "error", err)
	}
	a.d.Metrics.RunsTotal.WithLabelValues(persistence.StatusFailed).Inc()
	a.d.signal(Event{Kind: "finished", RunID: a.entry.RunID.String(), Attempt: a.attempt, Status: persistence.StatusFailed, Detail: msg})
	a.log().Error("run failed after repeated crashes", "error", a.crash)
}

// execute runs one attempt off the mailbox and reports back as a message.
// A panic anywhere in it is a crash, reported like a dead browser.
func (a *runActor) execute(ctx context.Context, sys *actor.ActorSystem, self *actor.PID) {
	var done attemptDone
	defer func() {
		if r := recover(); r != nil {
			done = attemptDone{crash: fmt.Errorf("panic: %v", r)}
		}
		sys.Root.Send(self, &done)
	}()
	done = a.runAttempt(ctx, sys, self)
}

func (a *runActor) dbCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), dbTimeout)
}

func (a *runActor) ack(why string) {
	ctx, cancel := a.dbCtx()
	defer cancel()
	if err := a.d.Queue.Ack(ctx, a.entry.ID); err != nil {
		a.d.Log.Warn("ack stream entry", "runId", a.entry.RunID.String(), "entry", a.entry.ID, "why", why, "error", err)
	}
}

// claim decides whether this entry's run is ours to start and starts it.
func (a *runActor) claim(self *actor.PID) (*persistence.Run, bool) {
	d := a.d
	id := a.entry.RunID
	log := d.Log.With("runId", id.String(), "worker", d.Worker)
	ctx, cancel := a.dbCtx()
	defer cancel()
	run, err := d.Runs.Get(ctx, id)
	// The API queues a run inside the transaction that writes it, so an
	// entry can arrive a moment before its row is visible: look again
	// briefly before calling the entry an orphan.
	for wait := time.Now().Add(missingRunGrace); errors.Is(err, persistence.ErrRunNotFound) && time.Now().Before(wait); {
		time.Sleep(25 * time.Millisecond)
		run, err = d.Runs.Get(ctx, id)
	}
	if errors.Is(err, persistence.ErrRunNotFound) {
		log.Warn("stream entry for a run that does not exist; dropped")
		a.ack("no such run")
		return nil, false
	}
	if err != nil {
		// Leave the entry pending: it is reclaimed after the lease.
		log.Error("load run", "error", err)
		return nil, false
	}
	if persistence.IsTerminal(run.Status) {
		a.ack("already finished")
		return nil, false
	}
	if run.Status == persistence.StatusQueued && (run.CancelRequestedAt != nil || run.DeletedAt != nil) {
		if err := d.Runs.CancelQueued(ctx, id); err != nil && !errors.Is(err, persistence.ErrStale) {
			log.Error("cancel queued run", "error", err)
			return nil, false
		}
		a.ack("cancelled while queued")
		d.signal(Event{Kind: "skipped", RunID: id.String(), Status: persistence.StatusCancelled})
		return nil, false
	}
	if run.Status == persistence.StatusRunning {
		mine := run.WorkerNode == d.Worker && run.ActorID == self.Id
		expired := run.LeaseExpiresAt == nil || run.LeaseExpiresAt.Before(time.Now())
		if !mine && !expired {
			if run.JobID != "" && run.JobID != a.entry.ID {
				a.ack("duplicate entry of a live run")
			}
			log.Info("run is alive on another worker; leaving it", "owner", run.WorkerNode)
			return nil, false
		}
		if !mine {
			d.Metrics.LeasesReclaimed.Inc()
			log.Warn("reclaiming run from a worker that stopped renewing", "owner", run.WorkerNode, "attempt", run.Attempt)
		}
	}
	if run.Attempt >= d.MaxDeliveries {
		msg := fmt.Sprintf("worker lost: run abandoned after %d attempts", run.Attempt)
		if err := d.Runs.Fail(ctx, id, run.Status, run.Attempt, msg); err != nil && !errors.Is(err, persistence.ErrStale) {
			log.Error("fail abandoned run", "error", err)
			return nil, false
		}
		if err := d.Queue.DeadLetter(ctx, a.entry, msg); err != nil {
			log.Warn("dead-letter entry", "error", err)
		}
		d.Metrics.RunsTotal.WithLabelValues(persistence.StatusFailed).Inc()
		d.signal(Event{Kind: "finished", RunID: id.String(), Attempt: run.Attempt, Status: persistence.StatusFailed, Detail: msg})
		return nil, false
	}
	owner := persistence.Owner{Worker: d.Worker, ActorAddress: self.Address, ActorID: self.Id}
	started, err := d.Runs.StartAttempt(ctx, id, run.Status, run.Attempt, owner, time.Now().Add(d.Lease))
	if errors.Is(err, persistence.ErrStale) {
		// Someone else started it first (a duplicate entry), or it was
		// cancelled meanwhile: drop our entry unless it is the run's own.
		if now, gerr := d.Runs.Get(ctx, id); gerr == nil && (persistence.IsTerminal(now.Status) || now.JobID != a.entry.ID) {
			a.ack("lost the race to start")
		}
		log.Info("run changed before it could start; leaving it")
		return nil, false
	}
	if err != nil {
		log.Error("start run", "error", err)
		return nil, false
	}
	return started, true
}

func (a *runActor) runAttempt(ctx context.Context, sys *actor.ActorSystem, self *actor.PID) attemptDone {
	d := a.d
	run, ok := a.claim(self)
	if !ok {
		return attemptDone{}
	}
	id := run.ID
	log := d.Log.With("runId", id.String(), "attempt", run.Attempt, "worker", d.Worker)

	dctx, dcancel := a.dbCtx()
	data, err := d.Runs.RecordingData(dctx, run.RecordingID)
	dcancel()
	if err != nil {
		return attemptDone{crash: fmt.Errorf("load recording: %w", err)}
	}
	rec, err := recording.Parse(data)
	if err != nil {
		a.failNow(run, "invalid recording: "+err.Error())
		return attemptDone{outcome: persistence.StatusFailed}
	}
	rec = recording.Normalize(rec)
	refs := make([]persistence.ActionRef, len(rec.Actions))
	for i, act := range rec.Actions {
		refs[i] = persistence.ActionRef{ID: act.ID, Type: act.Type}
	}
	dctx, dcancel = a.dbCtx()
	err = d.Runs.EnsureActions(dctx, id, run.Attempt, refs)
	dcancel()
	if err != nil {
		return attemptDone{crash: err}
	}
	sys.Root.Send(self, &attemptStarted{attempt: run.Attempt, total: len(refs)})
	d.signal(Event{Kind: "started", RunID: id.String(), Attempt: run.Attempt})
	log.Info("run started", "actions", len(refs))

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	keeper := a.keepLease(runCtx, cancel, run)
	defer keeper()

	opts := a.replayOptions(run)
	h, err := d.Pool.Acquire(runCtx, isolationOf(run))
	if err != nil {
		if runCtx.Err() == nil {
			return attemptDone{crash: err}
		}
		h = nil
	}
	var res *browser.Result
	if h != nil && isolationOf(run) == IsolationBrowser {
		// A run that owns its browser is cancelled by killing the process
		// group at once, not by waiting for the browser to wind down.
		stopKiller := context.AfterFunc(runCtx, func() {
			if errors.Is(context.Cause(runCtx), errCancelled) {
				_ = h.Browser().Close()
			}
		})
		defer stopKiller()
	}
	if h != nil {
		d.Metrics.RunsActive.Inc()
		obs := &rowWriter{a: a, run: run, cancel: cancel, sys: sys, self: self}
		res = h.Browser().Replay(runCtx, rec, opts, obs)
		d.Metrics.RunsActive.Dec()
		// A browser killed on purpose (cancel, hand-back) is no crash.
		crashed := res.Crashed && context.Cause(runCtx) == nil
		h.Release(crashed)
		if crashed {
			return attemptDone{crash: errors.New(res.ErrorMessage)}
		}
		obs.flush(res)
	}

	switch cause := context.Cause(runCtx); {
	case errors.Is(cause, errLeaseLost):
		log.Warn("lease lost; another worker owns the run now")
		return attemptDone{}
	case errors.Is(cause, errHandBack):
		a.handBackRun(run)
		return attemptDone{}
	case errors.Is(cause, errCancelled) || (res != nil && res.Status == persistence.StatusCancelled):
		return a.finishRun(run, res, persistence.StatusCancelled)
	}
	return a.finishRun(run, res, res.Status)
}

func (a *runActor) failNow(run *persistence.Run, msg string) {
	ctx, cancel := a.dbCtx()
	defer cancel()
	if err := a.d.Runs.Fail(ctx, run.ID, persistence.StatusRunning, run.Attempt, msg); err != nil {
		a.d.Log.Error("fail run", "runId", run.ID.String(), "error", err)
		return
	}
	a.ack("failed")
	a.d.Metrics.RunsTotal.WithLabelValues(persistence.StatusFailed).Inc()
	a.d.signal(Event{Kind: "finished", RunID: run.ID.String(), Attempt: run.Attempt, Status: persistence.StatusFailed, Detail: msg})
}

func (a *runActor) finishRun(run *persistence.Run, res *browser.Result, status string) attemptDone {
	d := a.d
	if res == nil {
		// Cancelled before the browser was ready.
		ctx, cancel := a.dbCtx()
		defer cancel()
		if err := d.Runs.Cancel(ctx, run.ID, persistence.StatusRunning, run.Attempt); err != nil {
			d.Log.Warn("cancel run", "runId", run.ID.String(), "error", err)
			return attemptDone{}
		}
		a.ack("cancelled")
		d.Metrics.RunsTotal.WithLabelValues(status).Inc()
		d.signal(Event{Kind: "finished", RunID: run.ID.String(), Attempt: run.Attempt, Status: status})
		return attemptDone{outcome: status}
	}
	o := persistence.Outcome{
		Status:          status,
		ActionsTotal:    res.ActionsTotal,
		ActionsExecuted: res.ActionsExecuted,
		ActionsFailed:   res.ActionsFailed,
		ActionsSkipped:  res.ActionsSkipped,
		DurationMs:      res.DurationMs,
		CompletedAt:     res.CompletedAt,
		ErrorMessage:    res.ErrorMessage,
		ErrorActionID:   res.ErrorActionID,
		VideoPath:       res.Video,
		Screenshots:     res.Screenshots,
	}
	if !res.StartedAt.IsZero() {
		o.StartedAt = &res.StartedAt
	}
	if o.CompletedAt.IsZero() {
		o.CompletedAt = time.Now()
	}
	ctx, cancel := a.dbCtx()
	defer cancel()
	if err := d.Runs.Finish(ctx, run.ID, run.Attempt, o); err != nil {
		if errors.Is(err, persistence.ErrStale) {
			d.Log.Warn("run changed before its result was written; result dropped", "runId", run.ID.String(), "attempt", run.Attempt)
			return attemptDone{}
		}
		d.Log.Error("write run result", "runId", run.ID.String(), "error", err)
		return attemptDone{}
	}
	a.ack("finished")
	d.Metrics.RunsTotal.WithLabelValues(status).Inc()
	d.Metrics.RunDuration.Observe(float64(res.DurationMs) / 1000)
	if status == persistence.StatusCancelled {
		if run2, err := d.Runs.Get(ctx, run.ID); err == nil && run2.CancelRequestedAt != nil {
			d.Metrics.CancelLatency.Observe(time.Since(*run2.CancelRequestedAt).Seconds())
		}
	}
	d.signal(Event{Kind: "finished", RunID: run.ID.String(), Attempt: run.Attempt, Status: status, Detail: res.ErrorMessage})
	d.Log.Info("run finished", "runId", run.ID.String(), "attempt", run.Attempt, "worker", d.Worker, "status", status, "durationMs", res.DurationMs)
	return attemptDone{outcome: status}
}

// handBackRun returns a running attempt to the queue for another worker.
func (a *runActor) handBackRun(run *persistence.Run) {
	d := a.d
	ctx, cancel := a.dbCtx()
	defer cancel()
	if err := d.Runs.Requeue(ctx, run.ID, run.Attempt); err != nil {
		d.Log.Warn("hand run back", "runId", run.ID.String(), "error", err)
		return
	}
	entryID, err := d.Queue.Enqueue(ctx, run.ID)
	if err != nil {
		// The old entry stays pending and is reclaimed after the lease.
		d.Log.Warn("re-enqueue handed-back run", "runId", run.ID.String(), "error", err)
		return
	}
	_ = d.Runs.SetJob(ctx, run.ID, d.Queue.Stream(), entryID)
	a.ack("handed back")
	d.signal(Event{Kind: "requeued", RunID: run.ID.String(), Attempt: run.Attempt})
	d.Log.Info("run handed back to the queue", "runId", run.ID.String(), "attempt", run.Attempt)
}

// keepLease renews the run's lease every Lease/3 until stopped, ending the
// run when the lease is lost or a cancel was requested.
func (a *runActor) keepLease(ctx context.Context, cancel context.CancelCauseFunc, run *persistence.Run) (stop func()) {
	d := a.d
	stopCh := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(d.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-stopCh:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := a.dbCtx()
			if _, err := d.Queue.Renew(rctx, d.Worker, a.entry.ID); err != nil {
				d.Log.Warn("renew stream lease", "runId", run.ID.String(), "error", err)
			}
			lease, err := d.Runs.RenewLease(rctx, run.ID, run.Attempt, time.Now().Add(d.Lease))
			rcancel()
			switch {
			case errors.Is(err, persistence.ErrStale):
				cancel(errLeaseLost)
				return
			case err != nil:
				d.Log.Warn("renew run lease", "runId", run.ID.String(), "error", err)
			case lease.CancelRequested:
				cancel(errCancelled)
				return
			}
		}
	}()
	return func() { close(stopCh); <-exited }
}

func isolationOf(run *persistence.Run) string {
	var o struct {
		Isolation string `json:"isolation"`
	}
	_ = json.Unmarshal(run.Options, &o)
	if o.Isolation == IsolationBrowser {
		return IsolationBrowser
	}
	return IsolationContext
}

func (a *runActor) replayOptions(run *persistence.Run) browser.Options {
	o := browser.Options{
		RunID:                 run.ID.String(),
		BrowserName:           run.Browser,
		Timeout:               time.Duration(run.Timeout) * time.Millisecond,
		TimingEnabled:         run.TimingEnabled,
		TimingMode:            run.TimingMode,
		SpeedMultiplier:       run.SpeedMultiplier,
		ContinueOnError:       run.ContinueOnError,
		AssertAutoCheckpoints: run.AssertAutoCheckpoints,
		Variables:             run.Variables,
		FilesDir:              a.d.FilesDir,
	}
	if run.ScreenshotEnabled {
		o.ScreenshotMode = run.ScreenshotMode
		o.ScreenshotDir = a.d.ScreenshotDir
	}
	if run.VideoEnabled {
		o.VideoDir = a.d.VideoDir
	}
	return o
}
