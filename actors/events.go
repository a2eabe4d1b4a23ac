package actors

import (
	"sort"
	"strings"
	"time"

	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue"
)

// redactedValue stands in for a variable's value in an event.
const redactedValue = "***"

// redact removes the run's variable values from a message bound for an
// event: an error may quote what was typed, and events are readable by
// anyone who can read the run, with no masking of their own.
func redact(msg string, vars map[string]string) string {
	if msg == "" || len(vars) == 0 {
		return msg
	}
	vals := make([]string, 0, len(vars))
	for _, v := range vars {
		if len(v) >= 3 { // shorter values would blank out ordinary words
			vals = append(vals, v)
		}
	}
	// Longest first, so a value containing another is removed whole.
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	for _, v := range vals {
		msg = strings.ReplaceAll(msg, v, redactedValue)
	}
	return msg
}

// finishedEvent is run.finished from the run's row as written.
func finishedEvent(r *persistence.Run) queue.Event {
	d := queue.RunFinishedData{
		Status: string(r.Status), ActionsTotal: r.ActionsTotal, ActionsExecuted: r.ActionsExecuted,
		ActionsFailed: r.ActionsFailed, ActionsSkipped: r.ActionsSkipped,
	}
	if r.DurationMs != nil {
		d.DurationMs = *r.DurationMs
	}
	if r.ErrorMessage != nil {
		d.Error = redact(*r.ErrorMessage, r.Variables)
	}
	if r.ErrorActionID != nil {
		d.ErrorActionID = *r.ErrorActionID
	}
	return queue.RunFinished(d)
}

// eventTime formats t as the API does (RFC 3339 UTC, milliseconds).
func eventTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
