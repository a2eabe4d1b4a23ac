// Package actors is the worker runtime: a RunCoordinator that pulls runs
// from the dispatch stream and supervises one RunActor per run, the browser
// pool, and the protobuf messages that cross nodes.
package actors

import (
	"context"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/google/uuid"
	"github.com/saveaction/runner/artifacts"
	"github.com/saveaction/runner/browser"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue"
	"github.com/saveaction/runner/recording"
)

// Defaults of the runtime.
const (
	DefaultLease         = 30 * time.Second
	DefaultMaxDeliveries = persistence.DefaultMaxDeliveries
	DefaultConcurrency   = 3
	// restartsPerMinute is how often a run may crash and restart on a fresh
	// browser within a minute before it fails with the crash (DESIGN.md rule 4).
	restartsPerMinute = 2
)

// Deps is what the coordinator and its run actors share. Nothing in it is
// mutated after start.
type Deps struct {
	System  *actor.ActorSystem
	Runs    *persistence.Runs
	Queue   *queue.Queue
	Pool    *Pool
	Log     *slog.Logger
	Metrics *Metrics

	// Worker names this node in runs.worker_node and as stream consumer.
	Worker string
	// Version is the binary's version, reported in the fleet view.
	Version string
	// Concurrency is the number of runs at once (default DefaultConcurrency).
	Concurrency int
	// Lease is how long an entry stays ours without renewal (default DefaultLease);
	// the owner renews every Lease/3.
	Lease time.Duration
	// MaxDeliveries is how many attempts a run gets before it fails with
	// "worker lost" (default DefaultMaxDeliveries).
	MaxDeliveries int
	// ScreenshotDir, VideoDir and FilesDir are the storage folders of runs.
	ScreenshotDir, VideoDir, FilesDir string
	// Artifacts receives each run's video and screenshots once the replay
	// ends (actors/artifacts.go); nil keeps them on this worker's disk.
	Artifacts artifacts.Store
	// Clock drives lease renewals (default the real clock).
	Clock Clock
	// Signal, when set, is told of runtime events (tests wait on them
	// instead of sleeping).
	Signal func(Event)
	// Events, when set, receives each run's progress events (queue.Events);
	// Publish must return at once.
	Events EventPublisher
	// Replayer, when set, replays runs in place of Pool's browsers
	// (WORKER_REPLAYER=simulated). Everything around the replay (claim,
	// lease, row writer, events, settle) is the same.
	Replayer Replayer
}

// Replayer replays one recording without the browser pool. A result with
// Crashed set is handled as a browser crash: the run restarts on the
// supervisor's crash budget.
type Replayer interface {
	Replay(ctx context.Context, rec *recording.Recording, opts browser.Options, obs browser.Observer) *browser.Result
}

// EventPublisher takes a run's progress events without blocking.
type EventPublisher interface {
	Publish(runID uuid.UUID, e queue.Event)
}

func (d *Deps) publish(id uuid.UUID, e queue.Event) {
	if d.Events != nil {
		d.Events.Publish(id, e)
	}
}

// Event is a test signal from the runtime.
type Event struct {
	Kind    string // started, action, finished, skipped, crashed, cancelled, requeued
	RunID   string
	Attempt int
	Status  string
	Detail  string
}

func (d *Deps) signal(e Event) {
	if d.Signal != nil {
		d.Signal(e)
	}
}

func (d *Deps) withDefaults() *Deps {
	c := *d
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Lease <= 0 {
		c.Lease = DefaultLease
	}
	if c.MaxDeliveries <= 0 {
		c.MaxDeliveries = DefaultMaxDeliveries
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	return &c
}
