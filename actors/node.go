package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/saveaction/runner/persistence"
)

// NewSystem returns an actor system whose own logging goes through log at
// Warn and above: protoactor logs normal events at Error and Info noise.
func NewSystem(log *slog.Logger) *actor.ActorSystem {
	quiet := slog.New(minLevel{h: log.Handler(), min: slog.LevelWarn}).With("component", "protoactor")
	return actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
}

// StartRemote makes sys a remote node listening on host:port (port 0 picks
// one), so other nodes can send it protobuf messages. It returns the
// address other nodes reach it at.
func StartRemote(sys *actor.ActorSystem, host string, port int, advertised string) (r *remote.Remote, addr string, err error) {
	// protoactor panics when it cannot listen; find out first.
	if port != 0 {
		l, lerr := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if lerr != nil {
			return nil, "", fmt.Errorf("ACTOR_PORT %d: %w", port, lerr)
		}
		_ = l.Close()
	}
	var opts []remote.ConfigOption
	if advertised == "" && (host == "0.0.0.0" || host == "" || host == "::") && port != 0 {
		// Listening on every interface: other nodes reach us by host name.
		if hn, herr := os.Hostname(); herr == nil {
			advertised = net.JoinHostPort(hn, strconv.Itoa(port))
		}
	}
	if advertised != "" {
		opts = append(opts, remote.WithAdvertisedHost(advertised))
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("start actor remote: %v", p)
		}
	}()
	r = remote.NewRemote(sys, remote.Configure(host, port, opts...))
	r.Start()
	return r, sys.Address(), nil
}

// Canceller delivers CancelRun to the actor that owns a run, wherever it
// runs, and waits for the run to reach a final status.
type Canceller struct {
	System *actor.ActorSystem
	Runs   *persistence.Runs
	// Route, when set (a cluster), finds the coordinator of a run's worker
	// among the live members, and the actor system to send from: the
	// coordinator passes CancelRun to the run's actor. Without it, or when
	// the worker is no live member, CancelRun goes to the actor address
	// stored on the run.
	Route func(worker string) (from *actor.ActorSystem, coordinator *actor.PID, ok bool)
	// Poll is how often the run row is checked while waiting (default 25 ms).
	Poll time.Duration
}

// CancelRun sends CancelRun to the run's owner (through the cluster when
// there is one, else to its recorded actor) and waits up to timeout for the
// run to be final. confirmed is false when it is not final by then; the
// worker still sees the request at its next lease renewal.
func (c *Canceller) CancelRun(ctx context.Context, run *persistence.Run, timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	msg := &CancelRun{RunId: run.ID.String(), RequestedAtUnixMs: time.Now().UnixMilli()}
	if run.CancelRequestedAt != nil {
		msg.RequestedAtUnixMs = run.CancelRequestedAt.UnixMilli()
	}
	// Fire and forget: the run row, not a reply, says when it is done, and
	// a message to a stopped actor would only time out.
	// Through the cluster, the owner's member may be between two ids (it
	// joins again after a stall) when the cancel comes: while waiting, the
	// message is sent again whenever the route names another target (or
	// names one at last), so a rejoin does not leave the cancel to the
	// flag at the next renewal.
	var sentTo string
	reroute := func() bool {
		if c.Route == nil || run.WorkerNode == "" {
			return false
		}
		from, pid, ok := c.Route(run.WorkerNode)
		if !ok {
			return false
		}
		if to := fmt.Sprintf("%p/%s", from, pid.String()); to != sentTo {
			from.Root.Send(pid, msg)
			sentTo = to
		}
		return true
	}
	if !reroute() && run.ActorID != "" {
		c.System.Root.Send(actor.NewPID(run.ActorAddress, run.ActorID), msg)
	}
	poll := c.Poll
	if poll <= 0 {
		poll = 25 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		r, err := c.Runs.Get(ctx, run.ID)
		if err != nil {
			return false, err
		}
		if persistence.IsTerminal(r.Status) {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-t.C:
		}
		reroute()
	}
}

// RunStatus asks the owner of a running run what its current attempt is
// doing: through the cluster when there is one (the coordinator of the
// live member named by the run's worker passes the question to the run's
// actor), else the actor at the address stored on the run. It waits at
// most timeout; an owner that does not answer (dead, partitioned, frozen)
// is an error, and so is one that runs no attempt of the run or another
// attempt than the row's (the caller then reads the database).
func (c *Canceller) RunStatus(ctx context.Context, run *persistence.Run, timeout time.Duration) (*RunStatusResponse, error) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	msg := &RunStatusRequest{RunId: run.ID.String()}
	var f *actor.Future
	if c.Route != nil && run.WorkerNode != "" {
		if from, pid, ok := c.Route(run.WorkerNode); ok {
			f = from.Root.RequestFuture(pid, msg, timeout)
		}
	}
	if f == nil {
		if run.ActorID == "" {
			return nil, errors.New("the run has no owner")
		}
		f = c.System.Root.RequestFuture(actor.NewPID(run.ActorAddress, run.ActorID), msg, timeout)
	}
	res, err := f.Result()
	if err != nil {
		return nil, fmt.Errorf("ask the owner %s: %w", run.WorkerNode, err)
	}
	st, ok := res.(*RunStatusResponse)
	switch {
	case !ok:
		return nil, fmt.Errorf("ask the owner %s: unexpected answer %T", run.WorkerNode, res)
	case !st.Running:
		return nil, fmt.Errorf("the owner %s runs no attempt of the run", run.WorkerNode)
	case int(st.Attempt) != run.Attempt:
		return nil, fmt.Errorf("the owner %s runs attempt %d, the run is at %d", run.WorkerNode, st.Attempt, run.Attempt)
	}
	return st, nil
}

// minLevel drops records below min.
type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}
func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h: m.h.WithAttrs(a), min: m.min}
}
func (m minLevel) WithGroup(n string) slog.Handler { return minLevel{h: m.h.WithGroup(n), min: m.min} }
