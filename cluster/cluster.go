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
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
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
	// Host, Port and Advertised are the actor remote's listen address
	// (ACTOR_HOST, ACTOR_PORT, ACTOR_ADVERTISED_HOST).
	Host       string
	Port       int
	Advertised string
	Log        *slog.Logger
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

// Node is this process's membership: started, it is a member (worker) or
// a client (API) of the cluster; stopped, it leaves.
type Node struct {
	cfg  Config
	sys  *actor.ActorSystem
	opts Options
	log  *slog.Logger

	c        *pcluster.Cluster
	provider pcluster.ClusterProvider
	sub      *eventstream.Subscription
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	events   chan *pcluster.ClusterTopology

	mu      sync.Mutex
	members map[string]Member // by member id

	maintRunning atomic.Bool
}

// New returns the node; sys must be fresh (no remote started): the cluster
// starts its own. With a worker name the actor system's id becomes
// worker~suffix, so every member knows which worker a member id is.
func New(cfg Config, sys *actor.ActorSystem, opts Options) *Node {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Worker != "" {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		sys.ID = opts.Worker + idSep + hex.EncodeToString(b)
	}
	return &Node{cfg: cfg, sys: sys, opts: opts, log: opts.Log.With("component", "cluster"),
		members: map[string]Member{}, stop: make(chan struct{}), events: make(chan *pcluster.ClusterTopology, 64)}
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

// Start joins the cluster. protoactor panics on what it cannot do (a taken
// port, an unreachable etcd); those come back as errors.
func (n *Node) Start(ctx context.Context) (err error) {
	provider, err := n.newProvider()
	if err != nil {
		return err
	}
	n.provider = provider
	rc, err := remoteConfig(n.opts.Host, n.opts.Port, n.opts.Advertised)
	if err != nil {
		return err
	}
	var kinds []*pcluster.Kind
	if n.opts.Worker != "" {
		kinds = append(kinds, pcluster.NewKind(WorkerKind, actor.PropsFromProducer(func() actor.Actor {
			return &maintenanceGrain{n: n}
		})))
	}
	cfg := pcluster.Configure(n.cfg.Name, provider, disthash.New(), rc,
		pcluster.WithKinds(kinds...), pcluster.WithRequestTimeout(2*time.Second))
	// Members that stop gossiping are blocked well before the provider's
	// own timeouts would notice.
	cfg.HeartbeatExpiration = 5 * time.Second
	n.c = pcluster.New(n.sys, cfg)
	n.sub = n.sys.EventStream.Subscribe(func(evt any) {
		if t, ok := evt.(*pcluster.ClusterTopology); ok {
			select {
			case n.events <- t:
			default:
				n.log.Warn("cluster topology events backed up; one dropped")
			}
		}
	})
	n.wg.Add(1)
	go n.watch()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("join cluster (CLUSTER_PROVIDER=%s): %v", n.cfg.Provider, p)
		}
	}()
	if n.opts.Worker != "" {
		n.c.StartMember() // sleeps 1 s by design
	} else {
		n.c.StartClient()
	}
	n.log.Info("joined the cluster", "provider", n.cfg.Provider, "cluster", n.cfg.Name,
		"member", n.sys.ID, "address", n.sys.Address(), "client", n.opts.Worker == "")
	if n.opts.Maintenance != nil {
		n.wg.Add(1)
		go n.pokeMaintenance()
	}
	return nil
}

// Stop leaves the cluster: the provider first, so the others see this node
// go at once (its runs were handed back before), then the actor system.
// protoactor's graceful cluster shutdown sleeps 2 s and can wait on gRPC
// streams; the provider is deregistered here instead and the rest stopped
// hard.
func (n *Node) Stop(context.Context) error {
	first := false
	n.stopOnce.Do(func() { first = true })
	if !first {
		return nil
	}
	close(n.stop)
	if n.provider != nil {
		func() {
			defer func() { _ = recover() }()
			_ = n.provider.Shutdown(true)
		}()
	}
	if n.c != nil {
		func() {
			defer func() { _ = recover() }()
			n.c.Shutdown(false)
		}()
	}
	if n.sub != nil {
		n.sys.EventStream.Unsubscribe(n.sub)
	}
	n.wg.Wait()
	return nil
}

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

// System is the node's actor system.
func (n *Node) System() *actor.ActorSystem { return n.sys }

func (n *Node) watch() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case t := <-n.events:
			n.apply(t)
		}
	}
}

func (n *Node) apply(t *pcluster.ClusterTopology) {
	var joined, left []string
	n.mu.Lock()
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
	n.mu.Unlock()
	for _, w := range joined {
		n.log.Info("worker joined the cluster", "member", w)
		if n.opts.OnJoined != nil {
			n.opts.OnJoined(w)
		}
	}
	for _, w := range left {
		if w == n.opts.Worker {
			continue
		}
		n.log.Warn("worker left the cluster", "member", w)
		if n.opts.OnLeft != nil {
			n.opts.OnLeft(w)
		}
	}
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

// remoteConfig is the actor remote's listen and advertised address, as
// actors.StartRemote makes it for a node without a cluster.
func remoteConfig(host string, port int, advertised string) (*remote.Config, error) {
	if port != 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, fmt.Errorf("ACTOR_PORT %d: %w", port, err)
		}
		_ = l.Close()
	}
	var opts []remote.ConfigOption
	if advertised == "" && (host == "0.0.0.0" || host == "" || host == "::") && port != 0 {
		if hn, err := os.Hostname(); err == nil {
			advertised = net.JoinHostPort(hn, strconv.Itoa(port))
		}
	}
	if advertised != "" {
		opts = append(opts, remote.WithAdvertisedHost(advertised))
	}
	return remote.Configure(host, port, opts...), nil
}
