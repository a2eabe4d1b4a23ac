package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/saveaction/runner/queue"
)

// pullBlock is how long one XREADGROUP waits for new entries. It bounds how
// long a reclaim pass or the claim of a departed worker's entries waits
// behind a blocking pull: every read goes through one gate.
const pullBlock = 500 * time.Millisecond

// Coordinator messages (local).
type (
	pullNow struct{}
	pulled  struct {
		entries []queue.Entry
		err     error
		// cursor is where the next reclaim pass starts ("" after a pull).
		cursor  string
		reclaim bool
		// from names the worker that left the cluster when the entries
		// were claimed from it.
		from string
	}
	reclaimTick struct{}
	// drain stops pulling, waits up to grace for runs to finish, then hands
	// the rest back; done is closed when no run is left.
	drain struct {
		grace time.Duration
		done  chan struct{}
	}
	drainDeadline struct{}
	// memberLeft says a worker left the cluster: claim its pending entries
	// now instead of waiting for their lease.
	memberLeft struct{ worker string }
)

// coordinator pulls runs from the stream while it has free slots and
// supervises one run actor per run.
type coordinator struct {
	d        *Deps
	ctx      context.Context
	cancel   context.CancelFunc
	children map[string]*actor.PID // run id → actor
	// reading is set while the one Redis read (pull or reclaim) is in
	// flight: never two, so what they deliver never exceeds the free slots.
	reading bool
	// reclaimDue asks the next read to be a reclaim pass, from cursor.
	reclaimDue bool
	// departed lists workers that left the cluster whose pending entries
	// the next reads claim.
	departed []string
	cursor   string
	draining bool
	drained  chan struct{}
	// paused is an operator's drain (POST /workers/:name/drain): pull
	// nothing new, let the runs finish, stay up. Unlike draining it can be
	// undone.
	paused    bool
	startedAt time.Time
	// stopRead ends the Redis read in flight (a drain must not be followed
	// by a run the blocking pull delivers afterwards).
	stopRead context.CancelFunc
	timers   []func() // stop the coordinator's repeating timers
	// bg counts the Redis reads in flight, so stopping waits for them.
	bg sync.WaitGroup
}

func newCoordinator(d *Deps) actor.Producer {
	return func() actor.Actor { return &coordinator{d: d, children: map[string]*actor.PID{}} }
}

// supervisor restarts a crashed run actor as the next attempt, at most
// restartsPerMinute times a minute; past that the actor is stopped and
// fails its run with the crash.
func supervisor() actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(restartsPerMinute, time.Minute, func(reason interface{}) actor.Directive {
		return actor.RestartDirective
	})
}

// Receive handles the coordinator's messages.
func (c *coordinator) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		c.startedAt = time.Now()
		c.ctx, c.cancel = context.WithCancel(context.Background())
		c.timers = append(c.timers,
			sendEvery(ctx.ActorSystem().Root, c.d.Lease/2, ctx.Self(), &reclaimTick{}))
		c.updateSlots()
		c.tryPull(ctx)
	case *pullNow:
		c.tryPull(ctx)
	case *pulled:
		c.reading = false
		c.stopRead = nil
		if msg.reclaim {
			c.cursor = msg.cursor
		}
		if c.paused && !msg.reclaim && len(msg.entries) > 0 {
			// A blocking pull that was in flight when the drain came
			// delivered after it (go-redis does not end a blocking read on
			// cancel): put those runs back for other workers.
			c.redispatch(msg.entries)
			msg.entries = nil
		}
		for _, e := range msg.entries {
			c.spawnFrom(ctx, e, msg.from)
		}
		if msg.err != nil && c.ctx.Err() == nil {
			c.d.Log.Warn("pull runs", "worker", c.d.Worker, "from", msg.from, "error", msg.err)
			sendAfter(ctx.ActorSystem().Root, time.Second, ctx.Self(), &pullNow{})
			return
		}
		c.tryPull(ctx)
	case *memberLeft:
		// Claimed by the next read: one read in flight at a time, so
		// what it delivers never exceeds the free slots.
		if msg.worker != c.d.Worker && !slices.Contains(c.departed, msg.worker) {
			c.departed = append(c.departed, msg.worker)
		}
		c.tryPull(ctx)
	case *WorkerInfoRequest:
		ctx.Respond(c.info(ctx))
	case *CancelRun:
		// Through the cluster: the API found this worker by name. A run
		// not (or no longer) here is left to the flag at lease renewal.
		if pid, ok := c.children[msg.RunId]; ok {
			c.d.Log.Info("cancel through the cluster", "runId", msg.RunId, "worker", c.d.Worker)
			ctx.Forward(pid)
		} else if ctx.Sender() != nil {
			ctx.Respond(&CancelRunResponse{RunId: msg.RunId})
		}
	case *RunStatusRequest:
		// Through the cluster, like CancelRun: the run's actor answers.
		if pid, ok := c.children[msg.RunId]; ok {
			ctx.Forward(pid)
		} else if ctx.Sender() != nil {
			ctx.Respond(&RunStatusResponse{RunId: msg.RunId, Worker: c.d.Worker})
		}
	case *SetDraining:
		if c.paused != msg.Draining {
			c.paused = msg.Draining
			if c.paused && c.stopRead != nil {
				c.stopRead()
			}
			c.d.Log.Info("operator drain", "worker", c.d.Worker, "draining", c.paused, "runs", len(c.children))
		}
		ctx.Respond(c.info(ctx))
		c.tryPull(ctx)
	case *reclaimTick:
		c.reclaimDue = true
		c.tryPull(ctx)
	case *actor.Terminated:
		for id, pid := range c.children {
			if pid.Equal(msg.Who) {
				delete(c.children, id)
			}
		}
		c.updateSlots()
		if c.draining {
			if len(c.children) == 0 && c.drained != nil {
				close(c.drained)
				c.drained = nil
			}
			return
		}
		c.tryPull(ctx)
	case *drain:
		c.draining = true
		c.drained = msg.done
		if len(c.children) == 0 {
			close(c.drained)
			c.drained = nil
			return
		}
		c.d.Log.Info("draining: waiting for runs to finish", "worker", c.d.Worker, "runs", len(c.children), "grace", msg.grace)
		sendAfter(ctx.ActorSystem().Root, msg.grace, ctx.Self(), &drainDeadline{})
	case *drainDeadline:
		for _, pid := range c.children {
			ctx.Send(pid, &handBack{})
		}
	case *actor.Stopping:
		for _, t := range c.timers {
			t()
		}
		if c.cancel != nil {
			c.cancel()
		}
		c.bg.Wait()
	}
}

func (c *coordinator) free() int { return c.d.Concurrency - len(c.children) }

func (c *coordinator) updateSlots() {
	c.d.Metrics.WorkerSlots.WithLabelValues("busy").Set(float64(len(c.children)))
	c.d.Metrics.WorkerSlots.WithLabelValues("free").Set(float64(max(c.free(), 0)))
}

// tryPull starts the next Redis read when there are free slots and no read
// in flight: a reclaim pass when one is due, else a pull of new entries.
// Either asks for no more entries than there are free slots.
func (c *coordinator) tryPull(ctx actor.Context) {
	n := c.free()
	if c.reading || c.draining || c.paused || n <= 0 || c.ctx.Err() != nil {
		return
	}
	c.reading = true
	reclaim := c.reclaimDue
	var from string
	if len(c.departed) > 0 {
		// A departed worker's runs first: they are already late.
		from, c.departed = c.departed[0], c.departed[1:]
		reclaim = false
	} else {
		c.reclaimDue = false
	}
	sys, self, cursor := ctx.ActorSystem(), ctx.Self(), c.cursor
	pctx, stop := context.WithCancel(c.ctx)
	c.stopRead = stop
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		defer stop()
		var msg pulled
		if from != "" {
			msg.from = from
			cctx, cancel := context.WithTimeout(pctx, 5*time.Second)
			msg.entries, msg.err = c.d.Queue.ClaimFrom(cctx, from, c.d.Worker, n)
			cancel()
		} else if reclaim {
			msg.reclaim = true
			msg.entries, msg.cursor, msg.err = c.d.Queue.Reclaim(pctx, c.d.Worker, c.d.Lease, n, cursor)
		} else {
			msg.entries, msg.err = c.d.Queue.Pull(pctx, c.d.Worker, n, pullBlock)
		}
		if errors.Is(msg.err, context.Canceled) {
			msg.err = nil
		}
		sys.Root.Send(self, &msg)
	}()
}

// redispatch gives new entries a draining node received back to the
// stream: a fresh entry, recorded on the run, then the old one acked. Only
// new entries (a pull, not a reclaim) come here, so their runs are queued.
func (c *coordinator) redispatch(entries []queue.Entry) {
	pctx := c.ctx
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		ctx, cancel := context.WithTimeout(pctx, dbTimeout)
		defer cancel()
		for _, e := range entries {
			if e.Bad {
				_ = c.d.Queue.Ack(ctx, e.ID)
				continue
			}
			id, err := c.d.Queue.Enqueue(ctx, e.RunID)
			if err == nil {
				err = c.d.Runs.SetJob(ctx, e.RunID, c.d.Queue.Stream(), id)
			}
			if err != nil {
				// Left pending here: reclaimed by another worker after the lease.
				c.d.runLog(e.RunID.String(), e.ID).Warn("give back a run pulled while draining", "error", err)
				continue
			}
			c.d.ack(ctx, e, "pulled while draining")
			c.d.runLog(e.RunID.String(), e.ID).Info("gave back a run pulled while draining", "newJobId", id)
		}
	}()
}

// info is the node's own account of itself for the fleet view.
func (c *coordinator) info(ctx actor.Context) *WorkerInfo {
	wi := &WorkerInfo{Name: c.d.Worker, Address: ctx.Self().Address, Version: c.d.Version,
		StartedAtUnixMs: c.startedAt.UnixMilli(), Slots: int32(c.d.Concurrency), Busy: int32(len(c.children)),
		Runs: make([]string, 0, len(c.children)), State: "active"}
	for id := range c.children {
		wi.Runs = append(wi.Runs, id)
	}
	slices.Sort(wi.Runs)
	if c.paused || c.draining {
		wi.State = "draining"
	}
	return wi
}

// spawnFrom starts the run actor of an entry; deadOwner names the worker
// that left the cluster when the entry was claimed from it.
func (c *coordinator) spawnFrom(ctx actor.Context, e queue.Entry, deadOwner string) {
	if e.Bad {
		_ = c.d.Queue.Ack(c.ctx, e.ID)
		return
	}
	id := e.RunID.String()
	if _, busy := c.children[id]; busy {
		return // a second entry for a run we are running: the run actor acks on finish
	}
	if c.free() <= 0 {
		// Cannot happen while every read goes through tryPull and asks
		// for at most the free slots; if it did, the entry stays pending
		// and is reclaimed after the lease.
		c.d.runLog(id, e.ID).Error("entry delivered with no free slot; left pending")
		return
	}
	props := actor.PropsFromProducer(newRunActor(c.d, e, deadOwner))
	pid, err := ctx.SpawnNamed(props, "run-"+id)
	if err != nil {
		c.d.runLog(id, e.ID).Error("spawn run actor", "error", err)
		return
	}
	c.children[id] = pid
	c.updateSlots()
}

// Worker is a running worker node: its actor system and coordinator.
type Worker struct {
	d     *Deps
	coord *actor.PID
}

// StartWorker starts a coordinator on d.System.
func StartWorker(ctx context.Context, d Deps) (*Worker, error) {
	dd := d.withDefaults()
	if dd.System == nil || dd.Runs == nil || dd.Queue == nil || (dd.Pool == nil && dd.Replayer == nil) {
		return nil, errors.New("start worker: System, Runs, Queue and Pool (or Replayer) are required")
	}
	if err := dd.Queue.EnsureGroup(ctx); err != nil {
		return nil, err
	}
	props := actor.PropsFromProducer(newCoordinator(dd), actor.WithSupervisor(supervisor()))
	pid, err := dd.System.Root.SpawnNamed(props, CoordinatorName(dd.Worker))
	if err != nil {
		return nil, fmt.Errorf("spawn coordinator: %w", err)
	}
	return &Worker{d: dd, coord: pid}, nil
}

// MemberLeft tells the coordinator that worker left the cluster: its pending
// entries are claimed at once and its runs taken over (fenced by attempt).
func (w *Worker) MemberLeft(worker string) {
	w.d.System.Root.Send(w.coord, &memberLeft{worker: worker})
}

// PID is the coordinator's address: other nodes send it WorkerInfoRequest
// and SetDraining.
func (w *Worker) PID() *actor.PID { return w.coord }

// Info asks the coordinator for its state.
func (w *Worker) Info(timeout time.Duration) (*WorkerInfo, error) {
	return AskWorker(w.d.System, w.coord, &WorkerInfoRequest{}, timeout)
}

// SetDraining pauses (true) or resumes (false) pulling, as an operator's
// drain; running runs finish either way.
func (w *Worker) SetDraining(draining bool, timeout time.Duration) (*WorkerInfo, error) {
	return AskWorker(w.d.System, w.coord, &SetDraining{Draining: draining}, timeout)
}

// CoordinatorName is the actor name of a worker's coordinator, so that any
// node can address it from the worker's name and node address.
func CoordinatorName(worker string) string { return "coordinator-" + worker }

// AskWorker sends msg (WorkerInfoRequest or SetDraining) to a coordinator,
// local or on another node, and waits up to timeout for its WorkerInfo.
func AskWorker(sys *actor.ActorSystem, pid *actor.PID, msg any, timeout time.Duration) (*WorkerInfo, error) {
	res, err := sys.Root.RequestFuture(pid, msg, timeout).Result()
	if err != nil {
		return nil, fmt.Errorf("ask worker %s: %w", pid.Id, err)
	}
	wi, ok := res.(*WorkerInfo)
	if !ok {
		return nil, fmt.Errorf("ask worker %s: unexpected answer %T", pid.Id, res)
	}
	return wi, nil
}

// Shutdown stops pulling, lets running runs finish within grace, hands the
// rest back to the queue, and stops the coordinator (DESIGN.md rule 6).
func (w *Worker) Shutdown(ctx context.Context, grace time.Duration) error {
	done := make(chan struct{})
	w.d.System.Root.Send(w.coord, &drain{grace: grace, done: done})
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("shutdown: %w", ctx.Err())
	}
	_ = w.d.System.Root.StopFuture(w.coord).Wait()
	return err
}
