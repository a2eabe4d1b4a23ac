// Package cluster joins a node to the protoactor-go cluster of the fleet
// (DESIGN.md rule 7): membership through a provider (automanaged, etcd or
// k8s), the live worker list for the fleet view, member-left events that let
// survivors take over a dead worker's runs at once, and the maintenance
// singleton. protoactor's cluster code has data races of its own, so this
// package is tested without -race (see the Makefile) and nothing else
// imports protoactor's cluster packages.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func nopZap() *zap.Logger { return zap.NewNop() }

// Providers.
const (
	ProviderNone        = "none"
	ProviderAutomanaged = "automanaged"
	ProviderEtcd        = "etcd"
	ProviderK8s         = "k8s"
)

// WorkerKind is the cluster kind every worker member registers: members
// with it are the worker nodes, and the maintenance singleton is one of its
// identities.
const WorkerKind = "saveaction-worker"

// idSep separates the worker name from a random suffix in a member id: the
// suffix keeps a restarted worker of the same name from being refused as
// a member that once failed (protoactor blocks such ids for good).
const idSep = "~"

// automanagedRefresh is how often the automanaged provider polls every
// host; a killed node is noticed within about this long.
const automanagedRefresh = 500 * time.Millisecond

// Config is the cluster part of a node's configuration.
type Config struct {
	// Provider is none (no cluster: the node runs alone), automanaged,
	// etcd or k8s (CLUSTER_PROVIDER).
	Provider string
	// Name is the cluster's name (CLUSTER_NAME, default "saveaction").
	Name string
	// Hosts are every node's automanaged host:port (CLUSTER_HOSTS).
	Hosts []string
	// Port is the automanaged port this node serves (CLUSTER_PORT).
	Port int
	// EtcdEndpoints are etcd's client URLs (CLUSTER_ETCD_ENDPOINTS).
	EtcdEndpoints []string
}

// Enabled reports whether a provider is configured.
func (c Config) Enabled() bool { return c.Provider != "" && c.Provider != ProviderNone }

// Validate names the variable at fault in a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	switch c.Provider {
	case "", ProviderNone:
		return nil
	case ProviderAutomanaged:
		if len(c.Hosts) == 0 {
			errs = append(errs, errors.New("CLUSTER_HOSTS: required with CLUSTER_PROVIDER=automanaged (comma-separated host:port of every node)"))
		}
		for _, h := range c.Hosts {
			if _, p, err := net.SplitHostPort(h); err != nil || p == "" {
				errs = append(errs, fmt.Errorf("CLUSTER_HOSTS: %q is not host:port", h))
			}
		}
		// CLUSTER_PORT is checked when a member starts: a client (API
		// node) and the one-shot commands need none.
		if c.Port < 0 || c.Port > 65535 {
			errs = append(errs, fmt.Errorf("CLUSTER_PORT=%d: must be 1-65535", c.Port))
		}
	case ProviderEtcd:
		if len(c.EtcdEndpoints) == 0 {
			errs = append(errs, errors.New("CLUSTER_ETCD_ENDPOINTS: required with CLUSTER_PROVIDER=etcd (comma-separated URLs)"))
		}
		for _, e := range c.EtcdEndpoints {
			if e == "" || strings.ContainsAny(e, " \t") {
				errs = append(errs, fmt.Errorf("CLUSTER_ETCD_ENDPOINTS: %q is not a URL", e))
			}
		}
	case ProviderK8s:
		// The pod's namespace and labels come from the environment of a pod
		// (in-cluster configuration), checked at start.
	default:
		errs = append(errs, fmt.Errorf("CLUSTER_PROVIDER=%q: must be none, automanaged, etcd or k8s", c.Provider))
	}
	if c.Name == "" || strings.ContainsAny(c.Name, "/@~ ") {
		errs = append(errs, fmt.Errorf("CLUSTER_NAME=%q: must be a non-empty name without / @ ~ or spaces", c.Name))
	}
	return errors.Join(errs...)
}

// Member is a live node of the cluster.
type Member struct {
	ID      string
	Worker  string // the worker's name; "" for a member that is no worker
	Address string // host:port of its actor system
}

// Options are what a node brings to the cluster.
type Options struct {
	// Worker is this node's worker name; "" makes the node a client (an
	// API node): it sees the members but is none.
	Worker string
	// NewSystem makes the cluster's actor system (one per membership: a
	// member that rejoins gets a fresh one). It must not start a remote:
	// the cluster starts its own.
	NewSystem func() *actor.ActorSystem
	// Host is the address the cluster's remote listens on (ACTOR_HOST);
	// Port its port (0: a free port, kept when the node rejoins);
	// AdvertisedHost the host other nodes reach it by ("" = as listened,
	// or the host name when Host is every interface).
	Host           string
	Port           int
	AdvertisedHost string
	// Local is the node's own actor system (its coordinator, its runs);
	// Forward names actors of the cluster's system that pass every message
	// on, sender kept, to an actor of Local: other nodes address a worker's
	// coordinator at its member's address. Called at every join.
	Local   *actor.ActorSystem
	Forward func() map[string]*actor.PID
	Log     *slog.Logger
	// OnLeft is called, off protoactor's event goroutine, with the worker
	// name of every worker member that leaves the topology.
	OnLeft func(worker string)
	// OnJoined is called likewise for every worker member that joins.
	OnJoined func(worker string)
	// Maintenance, when set on a worker, is run by the one member that
	// holds the maintenance identity; its context ends when the identity
	// is no longer held here.
	Maintenance func(ctx context.Context)
}

// stallTick and stallLimit detect that this process was stopped (SIGSTOP,
// a paused VM) long enough for the others to drop it: the automanaged
// provider drops a member whose /_health does not answer within 2 s, etcd
// one whose 3 s lease ran out. protoactor then blocks its member id for
// good, so the node joins again under a fresh one.
const (
	stallTick  = 200 * time.Millisecond
	stallLimit = 1500 * time.Millisecond
	// heartbeatExpiration is how long gossip may be silent before a member
	// blocks the sender; a node stalled that long has blocked the others
	// itself, so it joins again whatever they say.
	heartbeatExpiration = 5 * time.Second
	// probeTimeout bounds the question to the others after a stall.
	probeTimeout = 2 * time.Second
	// afterStall is how long after a stall the workers leaving this node's
	// view are taken for its view lagging, not for them dying: the others
	// may drop and block this node just after it thawed (their health poll
	// timed out during the freeze), and then their gossip stops reaching it
	// and their heartbeats expire in its view up to heartbeatExpiration
	// later. Real departures meanwhile are the other members' to act on,
	// and the lease's after that.
	afterStall = 3 * heartbeatExpiration
	// checkEvery is how often a member asks the others whether they still
	// list it.
	checkEvery = 5 * time.Second
	// clientCheck is how often an API node (a client) compares its view
	// with a worker's; clientEmptyRejoin bounds how often one that lists no
	// worker at all joins again to look afresh.
	clientCheck       = 2 * time.Second
	clientEmptyRejoin = 30 * time.Second
)

// probeName is the actor, on every worker member's membership system, that
// answers whether a member id is in its view.
const probeName = "membership-probe"

// topologyEvent is a topology of one membership generation.
type topologyEvent struct {
	gen uint64
	t   *pcluster.ClusterTopology
}

// Node is this process's membership: started, it is a member (worker) or
// a client (API) of the cluster; stopped, it leaves. A member that finds it
// was stalled past detection leaves and joins again with a fresh member id
// and actor system, keeping the process, its worker and its runs.
type Node struct {
	cfg  Config
	opts Options
	log  *slog.Logger

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	events   chan topologyEvent

	mu       sync.Mutex
	sys      *actor.ActorSystem
	c        *pcluster.Cluster
	provider pcluster.ClusterProvider
	gen      uint64
	genCtx   context.Context
	genEnd   context.CancelFunc
	port     int
	members  map[string]Member // by member id
	joinedAt time.Time

	// stalled is set while a stall is being handled: what this node saw
	// leave meanwhile is its own view lagging, not the others dying.
	stalled  atomic.Bool
	rejoinMu sync.Mutex   // one rejoin at a time
	lastBeat atomic.Int64 // unix ns of the stall watch's last tick
	// stallEnd is when the last stall was handled (unix ns, 0 for none).
	stallEnd atomic.Int64
	// recheck asks watchListed to ask the others now: a departure was
	// ignored because this node's view may lag.
	recheck chan struct{}
	rejoins atomic.Int64

	maintRunning atomic.Bool
}

// New returns the node. With a worker name the member id is worker~suffix,
// so every member knows which worker a member id is.
func New(cfg Config, opts Options) *Node {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.NewSystem == nil {
		opts.NewSystem = func() *actor.ActorSystem { return actor.NewActorSystem() }
	}
	n := &Node{cfg: cfg, opts: opts, log: opts.Log.With("component", "cluster"),
		members: map[string]Member{}, stop: make(chan struct{}), events: make(chan topologyEvent, 64), port: opts.Port,
		recheck: make(chan struct{}, 1)}
	n.lastBeat.Store(time.Now().UnixNano())
	return n
}

// WorkerOf is the worker name in a member id ("" when it names none).
// Providers may prefix the actor system's id (etcd: "cluster@id").
func WorkerOf(memberID string) string {
	w, _, ok := strings.Cut(memberID, idSep)
	if !ok {
		return ""
	}
	if i := strings.LastIndexByte(w, '@'); i >= 0 {
		w = w[i+1:]
	}
	return w
}

// Name is the component's name.
func (n *Node) Name() string { return "cluster membership" }

// Start joins the cluster.
func (n *Node) Start(ctx context.Context) error {
	if err := n.join(); err != nil {
		return err
	}
	n.wg.Add(1)
	go n.watch()
	if n.opts.Worker != "" {
		n.wg.Add(2)
		go n.watchStall()
		go n.watchListed()
	} else {
		n.wg.Add(1)
		go n.watchView()
	}
	if n.opts.Maintenance != nil {
		n.wg.Add(1)
		go n.pokeMaintenance()
	}
	return nil
}

// join starts one membership: a fresh actor system (and member id), its
// remote on the node's port, the provider, and the forwarders. protoactor
// panics on what it cannot do (a taken port, an unreachable etcd); those
// come back as errors.
func (n *Node) join() (err error) {
	provider, err := n.newProvider()
	if err != nil {
		return err
	}
	if n.port == 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(n.opts.Host, "0"))
		if err != nil {
			return fmt.Errorf("cluster remote on ACTOR_HOST %s: %w", n.opts.Host, err)
		}
		n.port = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
	}
	rc, err := remoteConfig(n.opts.Host, n.port, n.opts.AdvertisedHost)
	if err != nil {
		return err
	}
	sys := n.opts.NewSystem()
	if n.opts.Worker != "" {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		sys.ID = n.opts.Worker + idSep + hex.EncodeToString(b)
	}
	n.mu.Lock()
	n.gen++
	gen := n.gen
	n.mu.Unlock()
	var kinds []*pcluster.Kind
	if n.opts.Worker != "" {
		kinds = append(kinds, pcluster.NewKind(WorkerKind, actor.PropsFromProducer(func() actor.Actor {
			return &maintenanceGrain{n: n, gen: gen}
		})))
	}
	cfg := pcluster.Configure(n.cfg.Name, provider, disthash.New(), rc,
		pcluster.WithKinds(kinds...), pcluster.WithRequestTimeout(2*time.Second))
	// Members that stop gossiping are blocked well before the provider's
	// own timeouts would notice.
	cfg.HeartbeatExpiration = heartbeatExpiration
	c := pcluster.New(sys, cfg)
	sys.EventStream.Subscribe(func(evt any) {
		if t, ok := evt.(*pcluster.ClusterTopology); ok {
			select {
			case n.events <- topologyEvent{gen: gen, t: t}:
			default:
				n.log.Warn("cluster topology events backed up; one dropped")
			}
		}
	})
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("join cluster (CLUSTER_PROVIDER=%s): %v", n.cfg.Provider, p)
			n.mu.Lock()
			if n.c == c {
				n.c, n.provider = nil, nil
			}
			n.mu.Unlock()
			func() {
				defer func() { _ = recover() }()
				_ = provider.Shutdown(true)
				c.Shutdown(false)
			}()
		}
	}()
	gctx, gend := context.WithCancel(context.Background())
	n.mu.Lock()
	n.sys, n.c, n.provider, n.genCtx, n.genEnd = sys, c, provider, gctx, gend
	n.members = map[string]Member{}
	n.joinedAt = time.Now()
	n.mu.Unlock()
	if n.opts.Worker != "" {
		c.StartMember() // sleeps 1 s by design
	} else {
		c.StartClient()
	}
	if n.opts.Worker != "" {
		if _, err := sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &probe{n: n} }), probeName); err != nil {
			return fmt.Errorf("cluster membership probe: %w", err)
		}
	}
	if n.opts.Forward != nil && n.opts.Local != nil {
		for name, to := range n.opts.Forward() {
			if _, err := sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
				return &forwarder{local: n.opts.Local, to: to}
			}), name); err != nil {
				return fmt.Errorf("cluster forwarder %s: %w", name, err)
			}
		}
	}
	n.log.Info("joined the cluster", "provider", n.cfg.Provider, "cluster", n.cfg.Name,
		"member", sys.ID, "address", sys.Address(), "client", n.opts.Worker == "")
	return nil
}

// leave ends the current membership: the provider first, so the others see
// this member go at once, then the cluster's actor system. protoactor's
// graceful cluster shutdown sleeps 2 s and can wait on gRPC streams; the
// provider is deregistered here instead and the rest stopped hard.
func (n *Node) leave() {
	n.mu.Lock()
	c, provider, end := n.c, n.provider, n.genEnd
	n.c, n.provider, n.genEnd = nil, nil, nil
	n.members = map[string]Member{}
	n.mu.Unlock()
	if end != nil {
		end()
	}
	if provider != nil {
		func() {
			defer func() { _ = recover() }()
			_ = provider.Shutdown(true)
		}()
	}
	if c != nil {
		func() {
			defer func() { _ = recover() }()
			c.Shutdown(false)
		}()
		// A client's cluster has no gossip, and its Shutdown panics before
		// it stops the remote: stop the system and the remote here too, so
		// the port is free for the next join.
		func() {
			defer func() { _ = recover() }()
			if !c.ActorSystem.IsStopped() {
				c.ActorSystem.Shutdown()
			}
		}()
		func() {
			defer func() { _ = recover() }()
			if c.Remote != nil {
				c.Remote.Shutdown(false)
			}
		}()
	}
}

// Stop leaves the cluster (this node's runs were handed back before).
func (n *Node) Stop(context.Context) error {
	first := false
	n.stopOnce.Do(func() { first = true })
	if !first {
		return nil
	}
	close(n.stop)
	n.wg.Wait()
	n.leave()
	return nil
}

// watchStall ticks every stallTick; a tick that comes stallLimit late means
// the process was stopped long enough for the others to drop this member
// (and block its id): it leaves and joins again under a fresh id.
func (n *Node) watchStall() {
	defer n.wg.Done()
	t := time.NewTicker(stallTick)
	defer t.Stop()
	last := time.Now()
	var peers []Member // the other workers as last seen before a stall
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if gap := time.Since(last); gap > stallLimit {
			n.rejoinMu.Lock()
			n.stalled.Store(true)
			if why := n.dropped(gap, peers); why != "" {
				n.log.Warn("this node was stalled past the cluster's detection (frozen?): joining again with a fresh member id",
					"stalled", gap.Round(time.Millisecond).String(), "why", why)
				n.rejoin()
			} else {
				n.log.Info("this node was stalled, but the others still list it", "stalled", gap.Round(time.Millisecond).String())
			}
			n.stallEnd.Store(time.Now().UnixNano())
			n.stalled.Store(false)
			n.rejoinMu.Unlock()
		}
		peers = peers[:0]
		for _, m := range n.Workers() {
			if m.Worker != n.opts.Worker {
				peers = append(peers, m)
			}
		}
		last = time.Now()
		n.lastBeat.Store(last.UnixNano())
	}
}

// dropped says why this node, stalled for gap, must join again ("" when
// it need not): stalled past the gossip heartbeat expiration it has blocked
// the others itself; else it asks the other workers it knew whether they
// still list it, and joins again when one does not or none answers.
func (n *Node) dropped(gap time.Duration, peers []Member) string {
	if gap >= heartbeatExpiration {
		return "stalled past the gossip heartbeat expiration"
	}
	if len(peers) == 0 {
		return ""
	}
	sys := n.System()
	if sys == nil {
		return "no membership"
	}
	id := sys.ID
	answers := make(chan *wrapperspb.BoolValue, len(peers))
	for _, m := range peers {
		go func() {
			res, err := sys.Root.RequestFuture(actor.NewPID(m.Address, probeName), wrapperspb.String(id), probeTimeout).Result()
			b, _ := res.(*wrapperspb.BoolValue)
			if err != nil {
				b = nil
			}
			answers <- b
		}()
	}
	answered := 0
	for range peers {
		if b := <-answers; b != nil {
			answered++
			if !b.Value {
				return "another member no longer lists it"
			}
		}
	}
	if answered == 0 {
		return "no other member answered"
	}
	return ""
}

// watchListed asks the other workers every checkEvery whether they still
// list this node: one dropped without a stall (a partition that healed, a
// member that blocked it under load) joins again when a peer says no twice
// in a row. When this node's own view has lost every other worker, it asks
// the ones it saw last, and none answering counts as a no: the others
// blocking this node's member id make them all leave its view at once and
// refuse its connections (seen in CI: a worker thawed just as the others
// dropped it was told it was still listed, then saw everyone leave and
// stayed alone, holding a second maintenance singleton). A departure
// ignored after a stall asks at once, without waiting for the tick.
func (n *Node) watchListed() {
	defer n.wg.Done()
	t := time.NewTicker(checkEvery)
	defer t.Stop()
	unlisted := 0
	var known []Member // the other workers last seen, while this node's view has none
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		case <-n.recheck:
		}
		var peers []Member
		for _, m := range n.Workers() {
			if m.Worker != n.opts.Worker {
				peers = append(peers, m)
			}
		}
		fromKnown := len(peers) == 0
		if fromKnown {
			peers = known
		} else {
			known = peers
		}
		no, answered := n.unlistedBy(peers)
		// Alone in its own view, and not one of the workers it saw last
		// answers: the others blocked this member (they refuse its
		// connections) or are all gone; either way a fresh member id costs
		// little, and known is forgotten after, so it is tried once.
		if fromKnown && len(peers) > 0 && answered == 0 {
			no = true
		}
		if n.stalled.Load() || !no {
			unlisted = 0
			continue
		}
		if unlisted++; unlisted < 2 {
			continue
		}
		unlisted, known = 0, nil
		n.rejoinMu.Lock()
		n.log.Warn("another member no longer lists this node: joining again with a fresh member id")
		n.stalled.Store(true)
		n.rejoin()
		n.stalled.Store(false)
		n.rejoinMu.Unlock()
	}
}

// unlistedBy reports whether one of peers answered that it does not list
// this node (no answer says nothing), and how many answered.
func (n *Node) unlistedBy(peers []Member) (unlisted bool, answered int) {
	sys := n.System()
	if sys == nil {
		return false, 0
	}
	for _, m := range peers {
		res, err := sys.Root.RequestFuture(actor.NewPID(m.Address, probeName), wrapperspb.String(sys.ID), probeTimeout).Result()
		b, ok := res.(*wrapperspb.BoolValue)
		if err != nil || !ok {
			continue
		}
		answered++
		if !b.Value {
			return true, answered
		}
	}
	return false, answered
}

// watchView is an API node's (a client's) check of its own view: a client
// answers no probe, and protoactor blocks for good every member its view
// saw leave, so a worker dropped by this node's view alone (a health poll
// that timed out here only, this process frozen or overloaded) would stay
// out of its fleet view and cancel routes. Every clientCheck it asks a
// worker it lists for that worker's view; when the worker lists a worker
// member this node does not, twice in a row, or this node lists no worker
// at two checks in a row (at most every clientEmptyRejoin), it joins again
// as a fresh client, which forgets what it blocked. A client has no runs:
// joining again costs a moment without routes (cancel falls back to the
// stored actor address and the lease flag).
func (n *Node) watchView() {
	defer n.wg.Done()
	t := time.NewTicker(clientCheck)
	defer t.Stop()
	var missing map[string]bool // worker members a peer listed and this node did not, last check
	empty := 0
	var emptyRejoin time.Time
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		mine := n.Workers()
		if len(mine) == 0 {
			missing = nil
			if empty++; empty >= 2 && time.Since(emptyRejoin) >= clientEmptyRejoin {
				empty, emptyRejoin = 0, time.Now()
				n.log.Info("this API node lists no worker: joining the cluster again to look afresh")
				n.rejoinClient()
			}
			continue
		}
		empty = 0
		theirs, ok := n.viewOf(mine)
		if !ok {
			continue // no answer says nothing
		}
		listed := map[string]bool{}
		for _, m := range n.Members() {
			listed[m.ID] = true
		}
		now, again := map[string]bool{}, []string{}
		for _, id := range theirs {
			if WorkerOf(id) == "" || listed[id] {
				continue
			}
			now[id] = true
			if missing[id] {
				again = append(again, id)
			}
		}
		missing = now
		if len(again) == 0 {
			continue
		}
		missing = nil
		n.log.Warn("a worker lists members this API node's view dropped: joining the cluster again", "missing", strings.Join(again, ","))
		n.rejoinClient()
	}
}

// rejoinClient joins again as a fresh client.
func (n *Node) rejoinClient() {
	n.rejoinMu.Lock()
	defer n.rejoinMu.Unlock()
	n.rejoin()
}

// viewOf asks the given workers, one after the other until one answers,
// for the member ids in its view.
func (n *Node) viewOf(peers []Member) ([]string, bool) {
	sys := n.System()
	if sys == nil {
		return nil, false
	}
	for _, m := range peers {
		res, err := sys.Root.RequestFuture(actor.NewPID(m.Address, probeName), &emptypb.Empty{}, probeTimeout).Result()
		if v, ok := res.(*wrapperspb.StringValue); err == nil && ok {
			if v.Value == "" {
				return nil, true
			}
			return strings.Split(v.Value, "\n"), true
		}
	}
	return nil, false
}

// probe answers whether a member id is in this node's view, or with the
// whole view.
type probe struct{ n *Node }

// Receive answers *wrapperspb.StringValue (a member id) with a BoolValue,
// and *emptypb.Empty with the member ids of this node's view, one a line.
func (p *probe) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*emptypb.Empty); ok && ctx.Sender() != nil {
		var ids []string
		for _, m := range p.n.Members() {
			ids = append(ids, m.ID)
		}
		ctx.Respond(wrapperspb.String(strings.Join(ids, "\n")))
		return
	}
	if q, ok := ctx.Message().(*wrapperspb.StringValue); ok && ctx.Sender() != nil {
		p.n.mu.Lock()
		_, listed := p.n.members[q.Value]
		if !listed {
			// etcd prefixes the member id with the cluster's name.
			_, listed = p.n.members[p.n.cfg.Name+"@"+q.Value]
		}
		p.n.mu.Unlock()
		ctx.Respond(wrapperspb.Bool(listed))
	}
}

// rejoin leaves and joins again, retrying until it succeeds or the node
// stops. The worker keeps running meanwhile: its attempts are fenced
// through PostgreSQL, not through membership.
func (n *Node) rejoin() {
	n.leave()
	for {
		err := n.join()
		if err == nil {
			n.rejoins.Add(1)
			return
		}
		n.log.Error("joining the cluster again", "error", err)
		select {
		case <-n.stop:
			return
		case <-time.After(time.Second):
		}
	}
}

// Rejoins counts the times this node joined again after a stall.
func (n *Node) Rejoins() int64 { return n.rejoins.Load() }

// Members are the live members, this node included when it is one.
func (n *Node) Members() []Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Member, 0, len(n.members))
	for _, m := range n.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Worker+a.ID, b.Worker+b.ID) })
	return out
}

// Workers are the live worker members.
func (n *Node) Workers() []Member {
	var out []Member
	for _, m := range n.Members() {
		if m.Worker != "" {
			out = append(out, m)
		}
	}
	return out
}

// Worker is the live member of the named worker.
func (n *Node) Worker(name string) (Member, bool) {
	for _, m := range n.Workers() {
		if m.Worker == name {
			return m, true
		}
	}
	return Member{}, false
}

// System is the actor system of the current membership: ask other members
// through it.
func (n *Node) System() *actor.ActorSystem {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sys
}

func (n *Node) cluster() *pcluster.Cluster {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.c
}

func (n *Node) watch() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case e := <-n.events:
			n.apply(e)
		}
	}
}

func (n *Node) apply(e topologyEvent) {
	t := e.t
	var joined, left []string
	n.mu.Lock()
	if e.gen != n.gen {
		n.mu.Unlock()
		return // a membership this node has left
	}
	for _, m := range t.Joined {
		w := ""
		if m.HasKind(WorkerKind) {
			w = WorkerOf(m.Id)
		}
		if _, known := n.members[m.Id]; !known && w != "" {
			joined = append(joined, w)
		}
		n.members[m.Id] = Member{ID: m.Id, Worker: w, Address: m.Address()}
	}
	for _, m := range t.Left {
		if old, ok := n.members[m.Id]; ok {
			delete(n.members, m.Id)
			if old.Worker != "" {
				left = append(left, old.Worker)
			}
		}
	}
	// Joined/Left are deltas; Members is the whole truth: keep to it.
	live := map[string]bool{}
	for _, m := range t.Members {
		live[m.Id] = true
		if _, ok := n.members[m.Id]; !ok {
			w := ""
			if m.HasKind(WorkerKind) {
				w = WorkerOf(m.Id)
			}
			n.members[m.Id] = Member{ID: m.Id, Worker: w, Address: m.Address()}
			if w != "" {
				joined = append(joined, w)
			}
		}
	}
	for id, m := range n.members {
		if !live[id] {
			delete(n.members, id)
			if m.Worker != "" {
				left = append(left, m.Worker)
			}
		}
	}
	liveWorkers := map[string]bool{}
	for _, m := range n.members {
		if m.Worker != "" {
			liveWorkers[m.Worker] = true
		}
	}
	n.mu.Unlock()
	for _, w := range joined {
		n.log.Info("worker joined the cluster", "member", w)
		if n.opts.OnJoined != nil {
			n.opts.OnJoined(w)
		}
	}
	// A node that was stalled, or was a moment ago, sees the others'
	// heartbeats expire and drops them: its view lags, they did not die.
	// It asks the others at once whether they still list it, and joins
	// again when they do not.
	stalled := n.opts.Worker != "" && (n.stalled.Load() ||
		time.Since(time.Unix(0, n.lastBeat.Load())) > stallLimit ||
		time.Since(time.Unix(0, n.stallEnd.Load())) < afterStall)
	for _, w := range left {
		switch {
		case w == n.opts.Worker:
			continue
		case liveWorkers[w]:
			// It joined again under a fresh member id: its old id leaving
			// says nothing about its runs.
			n.log.Info("a worker's former member id left; the worker is a member again", "member", w)
			continue
		case stalled:
			n.log.Warn("worker left this node's view while this node was stalled: ignored", "member", w)
			select {
			case n.recheck <- struct{}{}:
			default:
			}
			continue
		}
		n.log.Warn("worker left the cluster", "member", w)
		if n.opts.OnLeft != nil {
			n.opts.OnLeft(w)
		}
	}
}

// forwarder passes every message it gets, sender kept, to an actor of the
// node's own actor system.
type forwarder struct {
	local *actor.ActorSystem
	to    *actor.PID
}

// Receive forwards user messages.
func (f *forwarder) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started, *actor.Stopping, *actor.Stopped, *actor.Restarting, *actor.ReceiveTimeout:
		return
	}
	if s := ctx.Sender(); s != nil {
		f.local.Root.RequestWithCustomSender(f.to, ctx.Message(), s)
		return
	}
	f.local.Root.Send(f.to, ctx.Message())
}

func (n *Node) newProvider() (pcluster.ClusterProvider, error) {
	switch n.cfg.Provider {
	case ProviderAutomanaged:
		if n.opts.Worker != "" && n.cfg.Port == 0 {
			return nil, errors.New("CLUSTER_PORT: required on a worker with CLUSTER_PROVIDER=automanaged (the port of this node in CLUSTER_HOSTS)")
		}
		if n.opts.Worker != "" {
			// protoactor's automanaged server panics in a goroutine when its
			// port is taken; find out first.
			l, err := net.Listen("tcp", net.JoinHostPort("0.0.0.0", strconv.Itoa(n.cfg.Port)))
			if err != nil {
				return nil, fmt.Errorf("CLUSTER_PORT %d: %w", n.cfg.Port, err)
			}
			_ = l.Close()
		}
		return automanaged.NewWithConfig(automanagedRefresh, n.cfg.Port, n.cfg.Hosts...), nil
	case ProviderEtcd:
		p, err := etcd.NewWithConfig("/"+n.cfg.Name, clientv3.Config{
			Endpoints: n.cfg.EtcdEndpoints, DialTimeout: 5 * time.Second,
			// etcd's client logs through zap at info; keep it quiet.
			Logger: nopZap(),
		})
		if err != nil {
			return nil, fmt.Errorf("CLUSTER_ETCD_ENDPOINTS: %w", err)
		}
		return p, nil
	case ProviderK8s:
		p, err := k8s.New()
		if err != nil {
			return nil, fmt.Errorf("CLUSTER_PROVIDER=k8s: not running in a Kubernetes pod with a service account: %w", err)
		}
		return p, nil
	}
	return nil, fmt.Errorf("CLUSTER_PROVIDER=%q: no provider", n.cfg.Provider)
}

// remoteConfig is the cluster remote's listen and advertised address.
func remoteConfig(host string, port int, advertisedHost string) (*remote.Config, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("cluster remote port %d on ACTOR_HOST %s: %w", port, host, err)
	}
	_ = l.Close()
	if advertisedHost == "" && (host == "0.0.0.0" || host == "" || host == "::") {
		if hn, err := os.Hostname(); err == nil {
			advertisedHost = hn
		}
	}
	var opts []remote.ConfigOption
	if advertisedHost != "" {
		opts = append(opts, remote.WithAdvertisedHost(net.JoinHostPort(advertisedHost, strconv.Itoa(port))))
	}
	return remote.Configure(host, port, opts...), nil
}
