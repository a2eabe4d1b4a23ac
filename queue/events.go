package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Names of run events (DESIGN.md rule 8).
const (
	EventRunQueued      = "run.queued"
	EventRunStarted     = "run.started"
	EventActionStarted  = "action.started"
	EventActionFinished = "action.finished"
	EventRunRetrying    = "run.retrying"
	EventRunFinished    = "run.finished"
)

// Defaults of Events.
const (
	// DefaultEventsCap bounds a run's stream (XADD MAXLEN ~): two events per
	// action and a few per attempt leave room for thousands of actions.
	DefaultEventsCap = 10000
	// DefaultEventsTTL is how long a run's events stay after run.finished.
	DefaultEventsTTL = time.Hour
	// DefaultEventsIdleTTL is how long the stream of a run that never
	// finishes (its events lost, its worker gone) stays after its last
	// event; every publish pushes it out again.
	DefaultEventsIdleTTL = 24 * time.Hour
	// DefaultPublishTimeout bounds one write of events to Redis.
	DefaultPublishTimeout = 2 * time.Second
	// DefaultPublishBuffer is how many events wait for Redis before new
	// ones are dropped (and logged): a run never waits for its events.
	DefaultPublishBuffer = 4096
)

// Event is one progress event of a run. Data is a JSON object; it never
// holds variable values or other secrets.
type Event struct {
	// ID is the stream entry id ("1764645600000-0"), set on events read
	// back; ids of one run increase.
	ID   string          `json:"id,omitempty"`
	Name string          `json:"event"`
	Data json.RawMessage `json:"data"`
}

func newEvent(name string, data any) Event {
	raw, err := json.Marshal(data)
	if err != nil {
		// Only our own structs are passed in; they always marshal.
		raw = []byte("{}")
	}
	return Event{Name: name, Data: raw}
}

// RunQueued is published when a run is created (or retried).
func RunQueued() Event { return newEvent(EventRunQueued, struct{}{}) }

// RunStarted is published when an attempt starts on a worker.
func RunStarted(attempt int, worker string) Event {
	return newEvent(EventRunStarted, struct {
		Attempt int    `json:"attempt"`
		Worker  string `json:"worker"`
	}{attempt, worker})
}

// ActionStarted is published when the replay begins an action.
func ActionStarted(attempt, index int, id, typ string) Event {
	return newEvent(EventActionStarted, struct {
		Attempt int    `json:"attempt"`
		Index   int    `json:"index"`
		ID      string `json:"id"`
		Type    string `json:"type"`
	}{attempt, index, id, typ})
}

// ActionFinishedData is the payload of action.finished.
type ActionFinishedData struct {
	Attempt      int    `json:"attempt"`
	Index        int    `json:"index"`
	ID           string `json:"id"`
	Type         string `json:"type"`
	Status       string `json:"status"`
	DurationMs   int64  `json:"durationMs"`
	SelectorUsed string `json:"selectorUsed,omitempty"`
	Error        string `json:"error,omitempty"`
	// CompletedAt is when the action ended on the worker (RFC 3339, ms).
	CompletedAt string `json:"completedAt,omitempty"`
}

// ActionFinished is published when an action has its result.
func ActionFinished(d ActionFinishedData) Event { return newEvent(EventActionFinished, d) }

// RunRetrying is published when an attempt ends without a result and the
// run goes on as another attempt.
func RunRetrying(nextAttempt int, reason string) Event {
	return newEvent(EventRunRetrying, struct {
		NextAttempt int    `json:"nextAttempt"`
		Reason      string `json:"reason"`
	}{nextAttempt, reason})
}

// RunFinishedData is the payload of run.finished.
type RunFinishedData struct {
	Status          string `json:"status"`
	ActionsTotal    int    `json:"actionsTotal"`
	ActionsExecuted int    `json:"actionsExecuted"`
	ActionsFailed   int    `json:"actionsFailed"`
	ActionsSkipped  int    `json:"actionsSkipped"`
	DurationMs      int64  `json:"durationMs"`
	Error           string `json:"error,omitempty"`
	ErrorActionID   string `json:"errorActionId,omitempty"`
}

// RunFinished is published once a run has its final status.
func RunFinished(d RunFinishedData) Event { return newEvent(EventRunFinished, d) }

// Events are the per-run event streams under a key prefix: written by
// workers and the API, read by any API node to serve SSE with replay.
type Events struct {
	rdb     redis.UniversalClient
	prefix  string
	cap     int64
	ttl     time.Duration
	idleTTL time.Duration
	timeout time.Duration
	log     *slog.Logger

	// The asynchronous side: Publish queues, one goroutine writes, in
	// order, so a run's events keep their order.
	mu      sync.Mutex
	ch      chan pending
	closed  bool
	done    chan struct{}
	dropped int64
}

type pending struct {
	run uuid.UUID
	ev  Event
}

// NewEvents returns the event streams whose keys start with prefix; log
// receives publish failures (nil: slog.Default()). Call Start before
// Publish and Close when done.
func NewEvents(rdb redis.UniversalClient, prefix string, log *slog.Logger) *Events {
	if log == nil {
		log = slog.Default()
	}
	return &Events{rdb: rdb, prefix: prefix, cap: DefaultEventsCap, ttl: DefaultEventsTTL,
		idleTTL: DefaultEventsIdleTTL, timeout: DefaultPublishTimeout, log: log}
}

// WithTTL sets how long events stay after run.finished (tests shorten it).
func (e *Events) WithTTL(d time.Duration) *Events { e.ttl = d; return e }

// Key is the stream of run id.
func (e *Events) Key(id uuid.UUID) string { return e.prefix + "events:" + id.String() }

// Start starts the writer behind Publish.
func (e *Events) Start() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ch != nil {
		return
	}
	e.ch = make(chan pending, DefaultPublishBuffer)
	e.done = make(chan struct{})
	go e.writer(e.ch, e.done)
}

// Close stops taking events and waits until the queued ones are written or
// ctx ends.
func (e *Events) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.ch == nil || e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.ch)
	done := e.done
	e.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("events: %d not written: %w", len(e.ch), ctx.Err())
	}
}

// Publish queues ev for run id and returns at once: publishing never slows
// or fails a run. An event that finds the queue full (Redis too slow or
// gone) is dropped and logged; readers still get run.finished from the
// database.
func (e *Events) Publish(id uuid.UUID, ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ch == nil || e.closed {
		return
	}
	select {
	case e.ch <- pending{id, ev}:
	default:
		e.dropped++
		if e.dropped == 1 || e.dropped%1000 == 0 {
			e.log.Warn("run events dropped: Redis does not keep up", "dropped", e.dropped, "runId", id.String(), "event", ev.Name)
		}
	}
}

func (e *Events) writer(ch <-chan pending, done chan<- struct{}) {
	defer close(done)
	for p := range ch {
		ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
		if _, err := e.PublishNow(ctx, p.run, p.ev); err != nil {
			e.log.Warn("publish run event", "runId", p.run.String(), "event", p.ev.Name, "error", err)
		}
		cancel()
	}
}

// PublishNow writes ev to run id's stream and returns its id. The stream is
// capped and expires: soon after run.finished, much later otherwise.
func (e *Events) PublishNow(ctx context.Context, id uuid.UUID, ev Event) (string, error) {
	key := e.Key(id)
	ttl := e.idleTTL
	if ev.Name == EventRunFinished {
		ttl = e.ttl
	}
	// One command, atomic: the entry and the stream's expiry together
	// (a MULTI of XADD and EXPIRE was four commands per event).
	entry, err := publishScript.Run(ctx, e.rdb, []string{key}, e.cap, ttl.Milliseconds(), ev.Name, string(ev.Data)).Text()
	if err != nil {
		return "", fmt.Errorf("publish %s of run %s: %w", ev.Name, id, err)
	}
	return entry, nil
}

// publishScript appends one event to a run's capped stream and sets the
// stream's expiry. KEYS[1] the stream; ARGV: cap, ttl in ms, name, data.
var publishScript = redis.NewScript(`
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'event', ARGV[3], 'data', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return id`)

// Range returns run id's events after the entry id after ("" or "0" from
// the start), at most count.
func (e *Events) Range(ctx context.Context, id uuid.UUID, after string, count int64) ([]Event, error) {
	start := "-"
	if after != "" && after != "0" && after != "0-0" {
		start = "(" + after
	}
	msgs, err := e.rdb.XRangeN(ctx, e.Key(id), start, "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("read events of run %s: %w", id, err)
	}
	return toEvents(msgs), nil
}

// Last returns the id of run id's newest event, "" when it has none.
func (e *Events) Last(ctx context.Context, id uuid.UUID) (string, error) {
	msgs, err := e.rdb.XRevRangeN(ctx, e.Key(id), "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("read events of run %s: %w", id, err)
	}
	if len(msgs) == 0 {
		return "", nil
	}
	return msgs[0].ID, nil
}

// Wait blocks up to block for events of run id after the entry id after
// ("0" from the start) and returns them; none when nothing came.
func (e *Events) Wait(ctx context.Context, id uuid.UUID, after string, block time.Duration) ([]Event, error) {
	if after == "" {
		after = "0"
	}
	res, err := e.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{e.Key(id), after}, Count: 500, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("wait for events of run %s: %w", id, err)
	}
	var out []Event
	for _, s := range res {
		out = append(out, toEvents(s.Messages)...)
	}
	return out, nil
}

func toEvents(msgs []redis.XMessage) []Event {
	out := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		name, _ := m.Values["event"].(string)
		data, _ := m.Values["data"].(string)
		if name == "" {
			continue
		}
		if !json.Valid([]byte(data)) {
			data = "{}"
		}
		out = append(out, Event{ID: m.ID, Name: name, Data: json.RawMessage(data)})
	}
	return out
}

// EventIDLess reports whether stream entry id a comes before b. Ids that
// do not parse come first.
func EventIDLess(a, b string) bool {
	am, as := splitID(a)
	bm, bs := splitID(b)
	if am != bm {
		return am < bm
	}
	return as < bs
}

// ValidEventID reports whether s is a stream entry id ("<ms>-<seq>" or "<ms>").
func ValidEventID(s string) bool {
	ms, seq, ok := strings.Cut(s, "-")
	if _, err := strconv.ParseUint(ms, 10, 64); err != nil {
		return false
	}
	if ok {
		if _, err := strconv.ParseUint(seq, 10, 64); err != nil {
			return false
		}
	}
	return true
}

func splitID(s string) (uint64, uint64) {
	a, b, _ := strings.Cut(s, "-")
	ms, _ := strconv.ParseUint(a, 10, 64)
	seq, _ := strconv.ParseUint(b, 10, 64)
	return ms, seq
}
