package browser

import (
	"encoding/json"
	"time"

	"github.com/saveaction/runner/recording"
)

// Action statuses.
const (
	StatusSuccess = "success"
	StatusFailed  = "failed"
	StatusTimeout = "timeout"
	StatusSkipped = "skipped"
)

// Run statuses.
const (
	RunPassed    = "passed"
	RunFailed    = "failed"
	RunCancelled = "cancelled"
)

// Skip reasons that callers may compare against.
const (
	ReasonPreviousFailed = "previous action failed"
	ReasonCancelled      = "cancelled"
	ReasonAutoCheckpoint = "auto checkpoint"
)

// Observer is told of progress. Its methods are called synchronously from
// the replay goroutine and must return quickly. ActionStarted is called for
// every action that begins executing; ActionDone is called exactly once for
// every action of the recording, including those skipped without starting.
type Observer interface {
	ActionStarted(index int, a *recording.Action)
	ActionDone(r ActionResult)
}

// ActionResult is the outcome of one action.
type ActionResult struct {
	ActionID   string `json:"actionId"`
	ActionType string `json:"actionType"`
	// Index is the 0-based position of the action after normalisation.
	Index int `json:"index"`
	// Status is success, failed, timeout or skipped.
	Status      string    `json:"status"`
	StartedAt   time.Time `json:"startedAt"`
	CompletedAt time.Time `json:"completedAt"`
	DurationMs  int64     `json:"durationMs"`
	// SelectorUsed names the strategy that located the element, such as
	// "id", "css" or "selectors[2]:name"; empty when no element was needed.
	SelectorUsed string `json:"selectorUsed"`
	// Error is the message of a failed or timed-out action.
	Error string `json:"error"`
	// Reason says why an action was skipped.
	Reason   string   `json:"reason"`
	Warnings []string `json:"warnings"`
	// ScreenshotPath is the screenshot taken after the action, if any.
	ScreenshotPath string `json:"screenshotPath"`
	// SelectorHealth says how the element was found (nil when the action
	// located none).
	SelectorHealth *SelectorHealth `json:"selectorHealth,omitempty"`
}

// MarshalJSON writes empty selectorUsed, error, reason and screenshotPath
// (and the times of an action that never started) as null and warnings as
// an array, as REPLAY.md §6 shows.
func (r ActionResult) MarshalJSON() ([]byte, error) {
	type plain ActionResult
	out := struct {
		plain
		StartedAt      *time.Time `json:"startedAt"`
		CompletedAt    *time.Time `json:"completedAt"`
		SelectorUsed   *string    `json:"selectorUsed"`
		Error          *string    `json:"error"`
		Reason         *string    `json:"reason"`
		Warnings       []string   `json:"warnings"`
		ScreenshotPath *string    `json:"screenshotPath"`
	}{plain: plain(r), StartedAt: nullableTime(r.StartedAt), CompletedAt: nullableTime(r.CompletedAt),
		SelectorUsed: nullable(r.SelectorUsed), Error: nullable(r.Error), Reason: nullable(r.Reason),
		Warnings: r.Warnings, ScreenshotPath: nullable(r.ScreenshotPath)}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	return json.Marshal(out)
}

// Assertions counts the checkpoints that were asserted.
type Assertions struct {
	Total  int `json:"total"`
	Passed int `json:"passed"`
	Failed int `json:"failed"`
}

// Result is the outcome of one replay.
type Result struct {
	// Status is passed, failed or cancelled.
	Status      string    `json:"status"`
	StartedAt   time.Time `json:"startedAt"`
	CompletedAt time.Time `json:"completedAt"`
	DurationMs  int64     `json:"durationMs"`

	ActionsTotal    int `json:"actionsTotal"`
	ActionsExecuted int `json:"actionsExecuted"`
	ActionsFailed   int `json:"actionsFailed"`
	ActionsSkipped  int `json:"actionsSkipped"`

	// ErrorMessage is the first failure's message (or the reason the run
	// could not start); ErrorActionID the action that failed, if any.
	ErrorMessage  string `json:"errorMessage,omitempty"`
	ErrorActionID string `json:"errorActionId,omitempty"`

	Assertions  Assertions     `json:"assertions"`
	Actions     []ActionResult `json:"actions"`
	Screenshots []string       `json:"screenshots"`
	// SelectorHealth summarises the actions' SelectorHealth.
	SelectorHealth HealthSummary `json:"selectorHealth"`
	// Video is the path of the run's video, empty when none was made.
	Video string `json:"video"`
	// VideoError says why a requested video was not made.
	VideoError string `json:"videoError,omitempty"`

	// Crashed is true when the run failed because of the infrastructure
	// (the browser or its renderer died, the browser could not open a
	// context) rather than because the test failed. A supervisor may retry
	// a crashed run on a fresh browser; it must never retry a test failure.
	Crashed bool `json:"crashed,omitempty"`
}

// MarshalJSON writes an empty video as null and nil lists as [].
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	out := struct {
		plain
		Actions     []ActionResult `json:"actions"`
		Screenshots []string       `json:"screenshots"`
		Video       *string        `json:"video"`
	}{plain: plain(r), Actions: r.Actions, Screenshots: r.Screenshots, Video: nullable(r.Video)}
	if out.Actions == nil {
		out.Actions = []ActionResult{}
	}
	if out.Screenshots == nil {
		out.Screenshots = []string{}
	}
	return json.Marshal(out)
}

func nullableTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
