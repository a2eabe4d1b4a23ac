package actors

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/saveaction/runner/browser"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue"
	"github.com/saveaction/runner/recording"
)

// rowWriter writes each action's row as soon as the action completes, so a
// client polling /actions sees progress and a dead worker leaves its
// finished actions behind. The writes run on a goroutine of their own, in
// order, so the replay goes on to the next action while the row is
// written; outcome waits for them, so a finished run still has every row
// (a row whose write failed goes with the final write).
type rowWriter struct {
	a      *runActor
	run    *persistence.Run
	cancel context.CancelCauseFunc
	sys    *actor.ActorSystem
	self   *actor.PID
	// Owned by the writing goroutine until drain returns.
	saved map[int]bool
	count int

	rows    chan browser.ActionResult
	written chan struct{}
	drained bool
}

// rowQueue is how many finished actions may wait for their row write
// before the replay waits for the writer.
const rowQueue = 64

// ActionStarted implements browser.Observer.
func (w *rowWriter) ActionStarted(i int, a *recording.Action) {
	if log := w.a.d.Log; log.Enabled(context.Background(), slog.LevelDebug) {
		w.log().Debug("action started", "index", i, "action", a.ID, "type", a.Type)
	}
	w.a.d.publish(w.run.ID, queue.ActionStarted(w.run.Attempt, i, a.ID, a.Type))
	w.sys.Root.Send(w.self, &actionBegan{cur: &CurrentAction{Index: int32(i), Id: a.ID, Type: a.Type}})
}

// ActionDone implements browser.Observer.
func (w *rowWriter) ActionDone(r browser.ActionResult) {
	w.sys.Root.Send(w.self, &actionEnded{index: r.Index})
	if r.Status != persistence.ActionSkipped {
		w.a.d.Metrics.ActionDuration.WithLabelValues(r.ActionType).Observe(float64(r.DurationMs) / 1000)
	}
	w.a.d.publish(w.run.ID, queue.ActionFinished(queue.ActionFinishedData{Attempt: w.run.Attempt, Index: r.Index,
		ID: r.ActionID, Type: r.ActionType, Status: r.Status, DurationMs: r.DurationMs,
		SelectorUsed: r.SelectorUsed, Error: redact(r.Error, w.run.Variables), CompletedAt: eventTime(r.CompletedAt)}))
	if log := w.a.d.Log; log.Enabled(context.Background(), slog.LevelDebug) {
		w.log().Debug("action finished", "index", r.Index, "action", r.ActionID, "type", r.ActionType,
			"status", r.Status, "durationMs", r.DurationMs, "selector", r.SelectorUsed, "error", redact(r.Error, w.run.Variables))
	}
	if w.drained {
		return // the replay is over; outcome carries any row not written
	}
	if w.rows == nil {
		w.rows, w.written = make(chan browser.ActionResult, rowQueue), make(chan struct{})
		go w.write()
	}
	w.rows <- r
}

// write saves the queued rows in order until drain.
func (w *rowWriter) write() {
	defer close(w.written)
	for r := range w.rows {
		if w.save(r) {
			w.count++
			w.sys.Root.Send(w.self, &actionProgress{done: w.count})
		}
		w.a.d.signal(Event{Kind: "action", RunID: w.run.ID.String(), Attempt: w.run.Attempt, Status: r.Status, Detail: r.ActionID})
	}
}

// drain waits for every queued row write. Called once the replay returned
// (the observer is not called after), before outcome and on every way out
// of the attempt.
func (w *rowWriter) drain() {
	if w.drained {
		return
	}
	w.drained = true
	if w.rows != nil {
		close(w.rows)
		<-w.written
	}
}

// log is the run's logger. It is built from the attempt this writer
// serves, not from the actor's fields, which its mailbox owns.
func (w *rowWriter) log() *slog.Logger {
	return w.a.d.runLog(w.run.ID.String(), w.a.entry.ID, "attempt", w.run.Attempt)
}

func (w *rowWriter) save(r browser.ActionResult) bool {
	if w.saved == nil {
		w.saved = map[int]bool{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	err := w.a.d.Runs.SaveAction(ctx, w.run.ID, w.run.Attempt, toRow(r))
	if errors.Is(err, persistence.ErrStale) {
		w.cancel(errLeaseLost)
		return false
	}
	if err != nil {
		w.log().Warn("save action result", "action", r.ActionID, "error", err)
		return false
	}
	w.saved[r.Index] = true
	return true
}

// outcome is the attempt's result for Finish, carrying the rows whose own
// write failed or never happened so they are written with it.
func (w *rowWriter) outcome(res *browser.Result, status persistence.Status) persistence.Outcome {
	w.drain()
	o := persistence.Outcome{
		Status:        status,
		DurationMs:    res.DurationMs,
		CompletedAt:   res.CompletedAt,
		ErrorMessage:  res.ErrorMessage,
		ErrorActionID: res.ErrorActionID,
		VideoPath:     res.Video,
		Screenshots:   res.Screenshots,
	}
	if !res.StartedAt.IsZero() {
		o.StartedAt = &res.StartedAt
	}
	if o.CompletedAt.IsZero() {
		o.CompletedAt = time.Now()
	}
	for _, r := range res.Actions {
		if !w.saved[r.Index] {
			o.Rows = append(o.Rows, *toRow(r))
		}
	}
	if status == persistence.StatusCancelled {
		o.Unsettled = "cancelled"
	}
	return o
}

func toRow(r browser.ActionResult) *persistence.RunAction {
	row := &persistence.RunAction{
		ActionID:       r.ActionID,
		ActionIndex:    r.Index,
		ActionType:     r.ActionType,
		Status:         r.Status,
		SelectorUsed:   optString(r.SelectorUsed),
		ErrorMessage:   optString(r.Error),
		Reason:         optString(r.Reason),
		Warnings:       r.Warnings,
		ScreenshotPath: optString(r.ScreenshotPath),
	}
	if r.SelectorHealth != nil {
		// The API shows it per action and sums it per run (http/views.go).
		if m, err := json.Marshal(map[string]any{"selectorHealth": r.SelectorHealth}); err == nil {
			row.Metadata = m
		}
	}
	if !r.StartedAt.IsZero() {
		t := r.StartedAt.UTC()
		row.StartedAt = &t
	}
	if !r.CompletedAt.IsZero() {
		t := r.CompletedAt.UTC()
		row.CompletedAt = &t
		ms := r.DurationMs
		row.DurationMs = &ms
	}
	return row
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
