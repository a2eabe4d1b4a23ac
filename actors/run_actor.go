package actors

import (
	"context"
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
		run   *persistence.Run
		total int
	}
	actionProgress struct{ done int }
	// actionBegan and actionEnded track the action being replayed, and
	// replayOver the end of the replay, for the live status.
	actionBegan struct{ cur *CurrentAction }
	actionEnded struct{ index int }
	replayOver  struct{}
	attemptDone struct {
		crash error
		// run is the attempt this execution started, nil when it started
		// none (the run was settled or left to another owner).
		run *persistence.Run
	}
	// handBack asks a run actor to stop its attempt and give the run back
	// to the queue (graceful shutdown after the grace period).
	handBack struct{}
)

// crashReason is the panic value a run actor fails with after its browser
// died under it; the coordinator's supervisor restarts it as the next attempt.
type crashReason struct{ err error }

func (c crashReason) String() string { return c.err.Error() }

// runMemo is what a run actor keeps across the restarts of its supervisor
// (each restart makes a new instance).
type runMemo struct {
	lastCrash error
}

// runActor owns one run: it starts an attempt, lets the replay run off the
// mailbox, and answers cancel and status messages at once.
type runActor struct {
	d     *Deps
	entry queue.Entry
	memo  *runMemo
	// deadOwner names the worker that left the cluster when the entry was
	// claimed from it: its run may be taken over before its lease ends.
	deadOwner string

	run         *persistence.Run // the attempt started, once known
	total, done int
	// What the attempt is doing now (RunStatusRequest): its phase, the
	// action being replayed (nil between actions) and when it started.
	phase     string
	current   *CurrentAction
	startedAt time.Time
	cancel    context.CancelCauseFunc
	finished  bool
	crash     error
}

func newRunActor(d *Deps, e queue.Entry, deadOwner string) actor.Producer {
	memo := &runMemo{}
	return func() actor.Actor { return &runActor{d: d, entry: e, memo: memo, deadOwner: deadOwner} }
}

func (a *runActor) attempt() int {
	if a.run == nil {
		return 0
	}
	return a.run.Attempt
}

func (a *runActor) log() *slog.Logger {
	return a.d.runLog(a.entry.RunID.String(), a.entry.ID, "attempt", a.attempt())
}

// Receive handles the actor's messages.
func (a *runActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		runCtx, cancel := context.WithCancelCause(context.Background())
		a.cancel = cancel
		go a.execute(runCtx, ctx.ActorSystem(), ctx.Self(), a.memo.lastCrash)
	case *actor.Restarting:
		a.d.Metrics.ActorRestarts.Inc()
		a.log().Warn("run restarts on a fresh browser", "error", a.crash)
	case *attemptStarted:
		a.run, a.total = msg.run, msg.total
		a.phase, a.startedAt = "starting", time.Now()
		if msg.run.StartedAt != nil {
			a.startedAt = *msg.run.StartedAt
		}
	case *actionProgress:
		a.done = msg.done
	case *actionBegan:
		if a.phase != "finishing" {
			a.phase, a.current = "replaying", msg.cur
		}
	case *actionEnded:
		if a.current != nil && int(a.current.Index) == msg.index {
			a.current = nil
		}
	case *replayOver:
		a.phase, a.current = "finishing", nil
	case *CancelRun:
		accepted := a.cancel != nil && !a.finished
		if accepted {
			a.cancel(errCancelled)
		}
		if ctx.Sender() != nil {
			ctx.Respond(&CancelRunResponse{RunId: a.entry.RunID.String(), Accepted: accepted})
		}
	case *RunStatusRequest:
		if ctx.Sender() != nil {
			ctx.Respond(a.status())
		}
	case *handBack:
		if a.cancel != nil && !a.finished {
			a.cancel(errHandBack)
		}
	case *attemptDone:
		if msg.run != nil {
			a.run = msg.run
		}
		if msg.crash != nil {
			a.crash = msg.crash
			a.memo.lastCrash = msg.crash
			a.d.signal(Event{Kind: "crashed", RunID: a.entry.RunID.String(), Attempt: a.attempt(), Detail: msg.crash.Error()})
			panic(crashReason{msg.crash})
		}
		a.finished = true
		ctx.Stop(ctx.Self())
	case *actor.Stopping:
		if a.cancel != nil && !a.finished && a.crash == nil {
			a.cancel(errHandBack)
		}
	case *actor.Stopped:
		if a.crash != nil && !a.finished && a.run != nil {
			// The supervisor gave up: the crash budget is spent. The run
			// ends with the crash as its error.
			a.d.settle(settlement{t: persistence.TFinish, run: a.run, entry: a.entry, noResults: true,
				msg: "browser crashed: " + a.crash.Error()})
		}
	}
}

// status is what the current attempt is doing now; Running is false when
// none runs here (not started yet, or over).
func (a *runActor) status() *RunStatusResponse {
	st := &RunStatusResponse{RunId: a.entry.RunID.String(), Attempt: int32(a.attempt()), Worker: a.d.Worker,
		Running: a.run != nil && a.phase != "" && !a.finished && a.crash == nil}
	if !st.Running {
		return st
	}
	st.ActionsDone, st.ActionsTotal, st.Phase = int32(a.done), int32(a.total), a.phase
	st.StartedAtUnixMs = a.startedAt.UnixMilli()
	if a.current != nil {
		st.CurrentAction = &CurrentAction{Index: a.current.Index, Id: a.current.Id, Type: a.current.Type}
	}
	return st
}

// execute runs one attempt off the mailbox and reports back as a message.
// A panic anywhere in it is a crash, reported like a dead browser.
func (a *runActor) execute(ctx context.Context, sys *actor.ActorSystem, self *actor.PID, lastCrash error) {
	var done attemptDone
	defer func() {
		if r := recover(); r != nil {
			done.crash = fmt.Errorf("panic: %v", r)
		}
		sys.Root.Send(self, &done)
	}()
	a.runAttempt(ctx, sys, self, lastCrash, &done)
}

func (a *runActor) dbCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), dbTimeout)
}

// claim reads the run behind the entry and takes the lifecycle transition
// the table gives for what it finds: start it, take it over, restart it
// after a crash, or settle it (cancel, give up) or leave it. It returns the
// started attempt, or nil.
func (a *runActor) claim(self *actor.PID, lastCrash error) *persistence.Run {
	d := a.d
	id := a.entry.RunID
	log := d.runLog(id.String(), a.entry.ID)
	ctx, cancel := a.dbCtx()
	defer cancel()
	run, err := d.Runs.Get(ctx, id)
	// The API adds a run's entry after its row is committed, so the first
	// read finds it; an entry whose row is missing (from an API before
	// that order, or one whose write failed after its entry went out) is
	// looked at again briefly before it is called an orphan: soon, then
	// less often.
	pause := time.Millisecond
	for wait := time.Now().Add(missingRunGrace); errors.Is(err, persistence.ErrRunNotFound) && time.Now().Before(wait); {
		time.Sleep(pause)
		pause = min(2*pause, 25*time.Millisecond)
		run, err = d.Runs.Get(ctx, id)
	}
	if errors.Is(err, persistence.ErrRunNotFound) {
		log.Warn("stream entry for a run that does not exist; dropped")
		d.ack(ctx, a.entry, "no such run")
		return nil
	}
	if err != nil {
		// Leave the entry pending: it is reclaimed after the lease.
		log.Error("load run", "error", err)
		return nil
	}
	cancelled := run.CancelRequestedAt != nil || run.DeletedAt != nil
	exhausted := fmt.Sprintf("worker lost: run abandoned after %d failed attempts", run.Deliveries+1)
	settle := func(t persistence.Transition, msg string) *persistence.Run {
		d.settle(settlement{t: t, run: run, entry: a.entry, msg: msg, noResults: true})
		return nil
	}
	owner := persistence.Owner{Worker: d.Worker, ActorAddress: self.Address, ActorID: self.Id}
	var t persistence.Transition
	switch {
	case persistence.IsTerminal(run.Status):
		d.ack(ctx, a.entry, "already finished")
		return nil
	case run.Status == persistence.StatusQueued && cancelled:
		return settle(persistence.TCancelQueued, "")
	case run.Status == persistence.StatusQueued && run.Deliveries >= d.MaxDeliveries:
		return settle(persistence.TGiveUp, fmt.Sprintf("worker lost: run abandoned after %d failed attempts", run.Deliveries))
	case run.Status == persistence.StatusQueued:
		t = persistence.TStart
	case run.WorkerNode == d.Worker && run.ActorID == self.Id:
		// Ours: our supervisor restarted the actor after a crash.
		switch {
		case cancelled:
			return settle(persistence.TCancel, "")
		case run.Deliveries+1 >= d.MaxDeliveries:
			msg := "browser crashed"
			if lastCrash != nil {
				msg += ": " + lastCrash.Error()
			}
			return settle(persistence.TFinish, msg)
		}
		t = persistence.TCrashRestart
	case a.deadOwner != "" && run.Status == persistence.StatusRunning && run.WorkerNode == a.deadOwner && cancelled:
		// Its owner left the cluster: settle it now, not after the lease.
		log.Warn("cancelling a run whose worker left the cluster", "owner", run.WorkerNode, "attempt", run.Attempt)
		d.settle(settlement{t: persistence.TCancelOrphan, run: run, entry: a.entry, noResults: true, deadOwner: a.deadOwner})
		return nil
	case a.deadOwner != "" && run.Status == persistence.StatusRunning && run.WorkerNode == a.deadOwner && run.Deliveries+1 >= d.MaxDeliveries:
		log.Warn("giving up a run whose worker left the cluster", "owner", run.WorkerNode, "attempt", run.Attempt)
		d.settle(settlement{t: persistence.TGiveUp, run: run, entry: a.entry, msg: exhausted, noResults: true, deadOwner: a.deadOwner})
		return nil
	case a.deadOwner != "" && run.WorkerNode == a.deadOwner:
		// Its owner left the cluster: take it over now, not after the lease.
		t = persistence.TTakeOver
		d.Metrics.LeasesReclaimed.Inc()
		log.Warn("taking over a run whose worker left the cluster", "owner", run.WorkerNode, "attempt", run.Attempt)
	case !run.LeaseExpired:
		if run.JobID != "" && run.JobID != a.entry.ID {
			d.ack(ctx, a.entry, "duplicate entry of a live run")
		}
		log.Info("run is alive on another worker; leaving it", "owner", run.WorkerNode)
		return nil
	case cancelled:
		return settle(persistence.TCancelOrphan, "")
	case run.Deliveries+1 >= d.MaxDeliveries:
		return settle(persistence.TGiveUp, exhausted)
	default:
		t = persistence.TTakeOver
		d.Metrics.LeasesReclaimed.Inc()
		log.Warn("taking over a run whose worker stopped renewing", "owner", run.WorkerNode, "attempt", run.Attempt)
	}
	var started *persistence.Run
	switch t {
	case persistence.TStart:
		started, err = d.Runs.Start(ctx, id, run.Attempt, owner, d.Lease)
	case persistence.TTakeOver:
		if a.deadOwner != "" && run.WorkerNode == a.deadOwner && !run.LeaseExpired {
			started, err = d.Runs.TakeOverFrom(ctx, id, run.Attempt, a.deadOwner, owner, d.Lease)
		} else {
			started, err = d.Runs.TakeOver(ctx, id, run.Attempt, owner, d.Lease)
		}
	case persistence.TCrashRestart:
		started, err = d.Runs.CrashRestart(ctx, id, run.Attempt, owner, d.Lease)
	}
	if errors.Is(err, persistence.ErrStale) {
		// The run moved meanwhile (another worker, a cancel): the entry is
		// looked at again when it is reclaimed, unless it is a stale copy.
		if now, gerr := d.Runs.Get(ctx, id); gerr == nil && (persistence.IsTerminal(now.Status) || now.JobID != a.entry.ID) {
			d.ack(ctx, a.entry, "lost the race to start")
		}
		log.Info("run changed before it could start; leaving it", "transition", string(t))
		return nil
	}
	if err != nil {
		log.Error("start run", "transition", string(t), "error", err)
		return nil
	}
	switch t {
	case persistence.TTakeOver:
		d.publish(id, queue.RunRetrying(started.Attempt, "worker lost: "+run.WorkerNode+" stopped renewing its lease"))
	case persistence.TCrashRestart:
		d.publish(id, queue.RunRetrying(started.Attempt, "browser crashed; restarting on a fresh browser"))
	}
	return started
}

func (a *runActor) runAttempt(ctx context.Context, sys *actor.ActorSystem, self *actor.PID, lastCrash error, done *attemptDone) {
	d := a.d
	run := a.claim(self, lastCrash)
	if run == nil {
		return
	}
	done.run = run
	id := run.ID
	log := d.runLog(id.String(), a.entry.ID, "attempt", run.Attempt)

	dctx, dcancel := a.dbCtx()
	data, err := d.Runs.RecordingData(dctx, run)
	dcancel()
	if err != nil {
		done.crash = fmt.Errorf("load recording: %w", err)
		return
	}
	rec, err := recording.Parse(data)
	if err != nil {
		d.settle(settlement{t: persistence.TFinish, run: run, entry: a.entry, noResults: true, msg: "invalid recording: " + err.Error()})
		return
	}
	rec = recording.Normalize(rec)
	sys.Root.Send(self, &attemptStarted{run: run, total: len(rec.Actions)})
	d.publish(id, queue.RunStarted(run.Attempt, d.Worker))
	d.signal(Event{Kind: "started", RunID: id.String(), Attempt: run.Attempt})
	log.Info("run started", "actions", len(rec.Actions))

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	keeper := &leaseKeeper{lease: d.Lease, clock: d.Clock, log: log, stop: cancel,
		renewRow: func(ctx context.Context) (persistence.Lease, error) {
			return d.Runs.RenewLease(ctx, id, run.Attempt, d.Lease)
		},
		renewEntry: func(ctx context.Context) error {
			_, err := d.Queue.Renew(ctx, d.Worker, a.entry.ID)
			return err
		},
	}
	kctx, kstop := context.WithCancel(runCtx)
	kdone := make(chan struct{})
	go func() { defer close(kdone); keeper.run(kctx) }()
	defer func() { kstop(); <-kdone }()

	opts, err := runOptionsOf(run)
	if err != nil {
		d.settle(settlement{t: persistence.TFinish, run: run, entry: a.entry, noResults: true, msg: err.Error()})
		return
	}
	bopts := browserOptions(run, opts, d)
	var res *browser.Result
	obs := &rowWriter{a: a, run: run, cancel: cancel, sys: sys, self: self}
	defer obs.drain()
	if d.Replayer != nil {
		if runCtx.Err() == nil {
			d.Metrics.RunsActive.Inc()
			res = d.Replayer.Replay(runCtx, rec, bopts, obs)
			d.Metrics.RunsActive.Dec()
			sys.Root.Send(self, &replayOver{})
			if res.Crashed && context.Cause(runCtx) == nil {
				done.crash = errors.New(res.ErrorMessage)
				return
			}
		}
		a.end(runCtx, run, res, obs)
		return
	}
	h, err := d.Pool.Acquire(runCtx, opts.Isolation)
	if err != nil {
		if runCtx.Err() == nil {
			done.crash = err
			return
		}
		h = nil
	}
	if h != nil && opts.Isolation == IsolationBrowser {
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
		res = h.Browser().Replay(runCtx, rec, bopts, obs)
		d.Metrics.RunsActive.Dec()
		sys.Root.Send(self, &replayOver{})
		// A browser killed on purpose (cancel, hand-back, lost lease) is no crash.
		crashed := res.Crashed && context.Cause(runCtx) == nil
		h.Release(crashed)
		if crashed {
			done.crash = errors.New(res.ErrorMessage)
			return
		}
	}
	a.end(runCtx, run, res, obs)
}

// end settles an attempt whose replay returned res (nil: it never began).
func (a *runActor) end(runCtx context.Context, run *persistence.Run, res *browser.Result, obs *rowWriter) {
	d := a.d
	log := d.runLog(run.ID.String(), a.entry.ID, "attempt", run.Attempt)
	switch cause := context.Cause(runCtx); {
	case errors.Is(cause, errLeaseLost), errors.Is(cause, errLeaseUnrenewable):
		// Fenced: another attempt may own the run now; write nothing.
		log.Warn("run stopped: its lease is lost", "cause", cause)
		return
	case errors.Is(cause, errHandBack):
		d.settle(settlement{t: persistence.THandBack, run: run, entry: a.entry})
		return
	case res == nil:
		// Cancelled before the browser was ready.
		d.settle(settlement{t: persistence.TCancel, run: run, entry: a.entry, noResults: true})
		return
	case errors.Is(cause, errCancelled) || res.Status == string(persistence.StatusCancelled):
		d.settle(settlement{t: persistence.TCancel, run: run, entry: a.entry, outcome: d.withArtifacts(run, res, obs.outcome(res, persistence.StatusCancelled))})
		return
	}
	d.settle(settlement{t: persistence.TFinish, run: run, entry: a.entry, outcome: d.withArtifacts(run, res, obs.outcome(res, persistence.Status(res.Status)))})
}

func runOptionsOf(run *persistence.Run) (persistence.RunOptions, error) {
	return persistence.ParseRunOptions(run.Options)
}

// browserOptions turns a run's options into the replay's.
func browserOptions(run *persistence.Run, o persistence.RunOptions, d *Deps) browser.Options {
	b := browser.Options{
		RunID:                 run.ID.String(),
		BrowserName:           o.Browser,
		Timeout:               time.Duration(o.Timeout) * time.Millisecond,
		TimingEnabled:         o.TimingEnabled,
		TimingMode:            o.TimingMode,
		SpeedMultiplier:       o.SpeedMultiplier,
		MaxActionDelay:        time.Duration(o.MaxActionDelay) * time.Millisecond,
		ContinueOnError:       o.ContinueOnError,
		AssertAutoCheckpoints: o.AssertAutoCheckpoints,
		Variables:             run.Variables,
		FilesDir:              d.FilesDir,
	}
	if o.MaxActionDelay == 0 {
		// 0 means no pause at all, not the browser's default cap.
		b.MaxActionDelay = time.Nanosecond
	}
	if o.Screenshot {
		b.ScreenshotMode = o.ScreenshotMode
		b.ScreenshotDir = d.ScreenshotDir
	}
	if o.Video {
		b.VideoDir = d.VideoDir
	}
	return b
}
