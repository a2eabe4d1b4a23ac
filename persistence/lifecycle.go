package persistence

import (
	"fmt"
	"slices"
)

// Status is a run's status (PostgreSQL enum run_status). The terminal ones
// (passed, failed, cancelled) never change again.
type Status string

// Run statuses.
const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusPassed    Status = "passed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Statuses lists every run status in lifecycle order.
func Statuses() []Status {
	return []Status{StatusQueued, StatusRunning, StatusPassed, StatusFailed, StatusCancelled}
}

// IsTerminal reports whether a run in status s can never change again.
func IsTerminal(s Status) bool {
	return s == StatusPassed || s == StatusFailed || s == StatusCancelled
}

// Transition names one row of the lifecycle table (LIFECYCLE.md). Every
// status write in this package takes exactly one of them, as one
// compare-and-set on (id, status, attempt) plus the row's guard.
type Transition string

// The lifecycle's transitions, numbered as in LIFECYCLE.md.
const (
	TCreate       Transition = "create"        // 1: — → queued, by the API
	TStart        Transition = "start"         // 2: queued → running, by a worker with a free slot
	TRenew        Transition = "renew"         // 3: running → running, the owner extends its lease
	TTakeOver     Transition = "take-over"     // 4: running → running, another worker, owner gone
	TFinish       Transition = "finish"        // 5: running → passed/failed, by the owner
	TCancel       Transition = "cancel"        // 6: running → cancelled, by the owner
	TCancelOrphan Transition = "cancel-orphan" // 7: running → cancelled, anyone, owner gone
	TCancelQueued Transition = "cancel-queued" // 8: queued → cancelled, API or the puller
	THandBack     Transition = "hand-back"     // 9: running → queued, the owner on shutdown
	TGiveUp       Transition = "give-up"       // 10: queued/running → failed "worker lost"
	TCrashRestart Transition = "crash-restart" // 11: running → running, the owner's supervisor
)

// Rule is one row of the lifecycle table.
type Rule struct {
	Transition Transition
	From       []Status // nil: the run does not exist yet
	To         []Status
	By         string // who may take it
	Guard      string // what must hold besides status and attempt
	Effects    string // what the write does besides the status
}

// Lifecycle is the table of a run's transitions: the only moves a run's
// status may make. Documentation and the guard of every write at once.
var lifecycle = []Rule{
	{TCreate, nil, []Status{StatusQueued}, "API", "-", "rows pending from the recording version; stream entry"},
	{TStart, []Status{StatusQueued}, []Status{StatusRunning}, "a worker with a free slot",
		"no cancel, not deleted, deliveries < max", "owner, lease (database time), attempt+1, rows reset"},
	{TRenew, []Status{StatusRunning}, []Status{StatusRunning}, "the owner",
		"attempt unchanged", "lease extended; a cancel flag seen here leads to cancel"},
	{TTakeOver, []Status{StatusRunning}, []Status{StatusRunning}, "any worker",
		"lease expired by the database's clock (or owner left the cluster), no cancel, deliveries+1 < max",
		"deliveries+1, attempt+1, new owner, rows reset"},
	{TFinish, []Status{StatusRunning}, []Status{StatusPassed, StatusFailed}, "the owner",
		"-", "every row written or settled skipped; counters from the rows"},
	{TCancel, []Status{StatusRunning}, []Status{StatusCancelled}, "the owner, on the message or at renewal",
		"-", "browser killed, partial rows kept, the rest skipped"},
	{TCancelOrphan, []Status{StatusRunning}, []Status{StatusCancelled}, "anyone",
		"cancel requested (or deleted) and the owner gone (lease expired, or it left the cluster)", "rows settled"},
	{TCancelQueued, []Status{StatusQueued}, []Status{StatusCancelled}, "API or the worker that pulls it",
		"-", "rows skipped"},
	{THandBack, []Status{StatusRunning}, []Status{StatusQueued}, "the owner, on SIGTERM past the grace",
		"-", "attempt kept for fencing, deliveries unchanged, fresh stream entry"},
	{TGiveUp, []Status{StatusQueued, StatusRunning}, []Status{StatusFailed}, "anyone",
		"deliveries reached max (a running run: its owner gone: lease expired, or it left the cluster)", "rows settled; entry dead-lettered"},
	{TCrashRestart, []Status{StatusRunning}, []Status{StatusRunning}, "the owner's supervisor",
		"within the restart budget, deliveries+1 < max", "as take-over, on the same node"},
}

// Lifecycle returns a copy of the lifecycle table.
func Lifecycle() []Rule { return slices.Clone(lifecycle) }

// ruleOf returns the rule of t.
func ruleOf(t Transition) (Rule, bool) {
	for _, r := range lifecycle {
		if r.Transition == t {
			return r, true
		}
	}
	return Rule{}, false
}

// Allows reports whether transition t may move a run from from to to.
func Allows(t Transition, from, to Status) bool {
	r, ok := ruleOf(t)
	if !ok {
		return false
	}
	fromOK := (r.From == nil && from == "") || slices.Contains(r.From, from)
	return fromOK && slices.Contains(r.To, to)
}

// mustAllow guards every write against the table: a write the table does
// not allow is a programming error, reported rather than executed.
func mustAllow(t Transition, from, to Status) error {
	if !Allows(t, from, to) {
		return fmt.Errorf("lifecycle: %s does not move a run from %q to %q", t, from, to)
	}
	return nil
}
