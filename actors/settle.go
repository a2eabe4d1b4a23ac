package actors

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue"
)

// settlement is what a decision site concluded about a run: the lifecycle
// transition to take and what it needs. settle is the one place that
// carries it out, always in the same order: the compare-and-set write, then
// the stream (ack, dead letter or a fresh entry), metric, event and log.
type settlement struct {
	t       persistence.Transition
	run     *persistence.Run // id, status and attempt as the decision saw them
	entry   queue.Entry
	outcome persistence.Outcome // TFinish and TCancel with results
	msg     string              // error message (TGiveUp, TFinish without results)
	// noResults marks TFinish/TCancel of an attempt that produced none.
	noResults bool
	// deadOwner, on TCancelOrphan and TGiveUp of a running run, names the
	// worker that left the cluster: the write is guarded on it still
	// owning the attempt instead of an expired lease.
	deadOwner string
}

// settle applies s and reports whether its write took effect. A write that
// finds the run changed (ErrStale) leaves the stream entry alone: whoever
// changed the run owns it, and a finished run's entry is acked by whoever
// pulls it next.
func (d *Deps) settle(s settlement) bool {
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	run := s.run
	jobID := s.entry.ID
	if jobID == "" {
		jobID = run.JobID
	}
	log := d.runLog(run.ID.String(), jobID, "attempt", run.Attempt, "transition", string(s.t))
	status := s.outcome.Status
	var err error
	var written *persistence.Run // the run as the write left it, when it returned it
	switch s.t {
	case persistence.TFinish, persistence.TCancel:
		switch {
		case s.noResults && s.t == persistence.TCancel:
			status = persistence.StatusCancelled
			err = d.Runs.Cancel(ctx, run.ID, run.Attempt)
		case s.noResults:
			status = persistence.StatusFailed
			err = d.Runs.Fail(ctx, run.ID, run.Attempt, s.msg)
		default:
			written, err = d.Runs.FinishRun(ctx, run.ID, run.Attempt, s.outcome)
		}
	case persistence.TCancelOrphan:
		status = persistence.StatusCancelled
		if s.deadOwner != "" {
			err = d.Runs.CancelOrphanFrom(ctx, run.ID, run.Attempt, s.deadOwner)
		} else {
			err = d.Runs.CancelOrphan(ctx, run.ID, run.Attempt)
		}
	case persistence.TCancelQueued:
		status = persistence.StatusCancelled
		err = d.Runs.CancelQueued(ctx, run.ID)
	case persistence.TGiveUp:
		status = persistence.StatusFailed
		if s.deadOwner != "" && run.Status == persistence.StatusRunning {
			err = d.Runs.GiveUpFrom(ctx, run.ID, run.Attempt, s.deadOwner, s.msg)
		} else {
			err = d.Runs.GiveUp(ctx, run.ID, run.Status, run.Attempt, s.msg)
		}
	case persistence.THandBack:
		status = persistence.StatusQueued
		err = d.Runs.HandBack(ctx, run.ID, run.Attempt)
	default:
		log.Error("settle: not a settling transition")
		return false
	}
	if errors.Is(err, persistence.ErrStale) {
		log.Warn("run changed before it could be settled; left to its new owner")
		return false
	}
	if err != nil {
		// The entry stays pending: it is reclaimed after the lease and the
		// decision is taken again.
		log.Error("settle run", "error", err)
		return false
	}

	// The stream, now that PostgreSQL holds the truth.
	switch s.t {
	case persistence.TGiveUp:
		if err := d.Queue.DeadLetter(ctx, s.entry, s.msg); err != nil {
			log.Warn("dead-letter entry", "error", err)
		}
		d.Metrics.DeadLetters.Inc()
	case persistence.THandBack:
		entryID, err := d.Queue.Enqueue(ctx, run.ID)
		if err != nil {
			// The old entry stays pending and is reclaimed after the lease.
			log.Warn("re-enqueue handed-back run", "error", err)
		} else {
			if err := d.Runs.SetJob(ctx, run.ID, d.Queue.Stream(), entryID); err != nil {
				log.Warn("record job of handed-back run", "error", err)
			}
			d.ack(ctx, s.entry, "handed back")
		}
	default:
		d.ack(ctx, s.entry, string(s.t))
	}

	// Metric, event, log.
	detail := s.msg
	if s.outcome.ErrorMessage != "" {
		detail = s.outcome.ErrorMessage
	}
	if s.t == persistence.THandBack {
		d.publish(run.ID, queue.RunRetrying(run.Attempt+1, "worker shutting down; handed back to the queue"))
		d.signal(Event{Kind: "requeued", RunID: run.ID.String(), Attempt: run.Attempt})
		log.Info("run handed back to the queue")
		return true
	}
	d.Metrics.RunsTotal.WithLabelValues(string(status)).Inc()
	if status == persistence.StatusFailed {
		d.Metrics.RunFailures.WithLabelValues(failureClass(s)).Inc()
	}
	if !s.noResults && s.outcome.DurationMs > 0 {
		d.Metrics.RunDuration.Observe(float64(s.outcome.DurationMs) / 1000)
	}
	r := written
	if r == nil {
		r, err = d.Runs.Get(ctx, run.ID)
	}
	if err == nil {
		if status == persistence.StatusCancelled && r.CancelRequestedAt != nil {
			d.Metrics.CancelLatency.Observe(time.Since(*r.CancelRequestedAt).Seconds())
		}
		d.publish(run.ID, finishedEvent(r))
	} else {
		// The counters are the row's; without it, the status alone.
		d.publish(run.ID, queue.RunFinished(queue.RunFinishedData{Status: string(status), Error: redact(detail, run.Variables)}))
	}
	kind := "finished"
	if s.t == persistence.TCancelQueued {
		kind = "skipped"
	}
	d.signal(Event{Kind: kind, RunID: run.ID.String(), Attempt: run.Attempt, Status: string(status), Detail: detail})
	switch status {
	case persistence.StatusPassed:
		log.Info("run finished", "status", status, "durationMs", s.outcome.DurationMs)
	default:
		log.Warn("run finished", "status", status, "durationMs", s.outcome.DurationMs, "error", detail)
	}
	return true
}

// ack acknowledges and deletes a stream entry; a failure only delays: the
// entry is reclaimed and its finished run acked then.
func (d *Deps) ack(ctx context.Context, e queue.Entry, why string) {
	if err := d.Queue.Ack(ctx, e.ID); err != nil {
		d.runLog(e.RunID.String(), e.ID).Warn("ack stream entry", "why", why, "error", err)
	}
}

// failureClass is the bounded reason label of a failed run.
func failureClass(s settlement) string {
	switch {
	case s.t == persistence.TGiveUp:
		return FailureWorkerLost
	case s.noResults && strings.HasPrefix(s.msg, "browser crashed"):
		return FailureBrowserCrash
	case s.noResults:
		return FailureInvalidRecording
	}
	return FailureTest
}
