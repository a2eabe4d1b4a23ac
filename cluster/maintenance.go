package cluster

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/emptypb"
)

// MaintenanceIdentity is the cluster identity (of WorkerKind) of the one
// maintenance actor: it lives on exactly one member, and when that member
// dies the next poke activates it on another.
const MaintenanceIdentity = "maintenance"

// maintenancePoke is how often every worker member pokes the maintenance
// identity; the poke is what activates it again after its node died.
const maintenancePoke = time.Second

// maintenanceIdle is how long an activation goes without a poke before it
// stops its work: the identity is then placed elsewhere (the topology
// changed), so at most this long two members overlap. The passes of the
// reconciler and of artifact retention are idempotent and each takes a
// Redis lock, so an overlap does no harm.
const maintenanceIdle = 3 * maintenancePoke

// pokeMaintenance sends the maintenance identity a poke every
// maintenancePoke until the node stops.
func (n *Node) pokeMaintenance() {
	defer n.wg.Done()
	t := time.NewTicker(maintenancePoke)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		c := n.cluster()
		if c == nil {
			continue // joining again
		}
		func() {
			// protoactor's cluster request panics on a member list it is
			// still building; a missed poke is only a late one.
			defer func() { _ = recover() }()
			_, _ = c.Request(MaintenanceIdentity, WorkerKind, &emptypb.Empty{})
		}()
	}
}

// maintenanceGrain runs the node's Maintenance function while it is the
// activation of the maintenance identity and is poked.
type maintenanceGrain struct {
	n      *Node
	gen    uint64 // the membership it was activated in
	cancel context.CancelFunc
	done   chan struct{}
}

// Receive handles pokes and protoactor's lifecycle messages.
func (g *maintenanceGrain) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *emptypb.Empty:
		if g.cancel == nil && g.n.opts.Maintenance != nil {
			// The membership's context: it ends when the node leaves or
			// joins again, even if this actor never hears of it.
			parent := g.n.genContext(g.gen)
			mctx, cancel := context.WithCancel(parent)
			g.cancel, g.done = cancel, make(chan struct{})
			g.n.log.Info("maintenance singleton runs here", "member", ctx.ActorSystem().ID)
			g.n.maintRunning.Store(true)
			go func(done chan struct{}) {
				defer close(done)
				defer g.n.maintRunning.Store(false)
				g.n.opts.Maintenance(mctx)
			}(g.done)
			ctx.SetReceiveTimeout(maintenanceIdle)
		}
		if ctx.Sender() != nil {
			ctx.Respond(&emptypb.Empty{})
		}
	case *actor.ReceiveTimeout:
		g.n.log.Info("maintenance singleton moved away", "member", ctx.ActorSystem().ID)
		ctx.Stop(ctx.Self())
	case *actor.Stopping:
		if g.cancel != nil {
			g.cancel()
			<-g.done
			g.cancel = nil
		}
	}
}

// MaintenanceHere reports whether this node's activation runs maintenance
// now (tests and the fleet view).
func (n *Node) MaintenanceHere() bool {
	return n.maintRunning.Load()
}

// genContext is the context of membership gen (ended when it is not the
// current one).
func (n *Node) genContext(gen uint64) context.Context {
	n.mu.Lock()
	defer n.mu.Unlock()
	if gen != n.gen || n.genCtx == nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx
	}
	return n.genCtx
}
