package cluster

import (
	"slices"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
)

func TestWorkerOfMemberIDs(t *testing.T) {
	cases := []struct{ id, want string }{
		{"cw-a~2b5765", "cw-a"},    // automanaged: the actor system's id
		{"sa@cw-b~925b43", "cw-b"}, // etcd: cluster@id
		{"host-12-ab.c~00ff00", "host-12-ab.c"},
		{"3f1c2a9e0b", ""}, // k8s or an API client: no worker
		{"", ""},
	}
	for _, c := range cases {
		if got := WorkerOf(c.id); got != c.want {
			t.Errorf("WorkerOf(%q) = %q, want %q", c.id, got, c.want)
		}
	}
}

func TestValidateNamesTheVariable(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Provider: "none"}, ""},
		{Config{Provider: "etcd", Name: "x"}, "CLUSTER_ETCD_ENDPOINTS"},
		{Config{Provider: "automanaged", Name: "x", Port: 1}, "CLUSTER_HOSTS"},
		{Config{Provider: "automanaged", Name: "x", Hosts: []string{"a:1"}, Port: 70000}, "CLUSTER_PORT"},
		{Config{Provider: "automanaged", Name: "x", Hosts: []string{"a:1"}}, ""}, // a client needs no port
		{Config{Provider: "k8s", Name: ""}, "CLUSTER_NAME"},
		{Config{Provider: "consul", Name: "x"}, "CLUSTER_PROVIDER"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if c.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", c.cfg, err)
			}
			continue
		}
		if err == nil || !contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v does not name %s", c.cfg, err, c.want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func member(id string) *pcluster.Member {
	return &pcluster.Member{Id: id, Host: "127.0.0.1", Port: 1, Kinds: []string{WorkerKind}}
}

func topology(ids ...string) *pcluster.ClusterTopology {
	t := &pcluster.ClusterTopology{}
	for _, id := range ids {
		t.Members = append(t.Members, member(id))
	}
	return t
}

// What a topology change tells the worker: who left, except when this
// node's own view lags (it was stalled), when the worker is a member again
// under a fresh id, or when the event is of a membership already left.
func TestApplyReportsOnlyRealDepartures(t *testing.T) {
	var left []string
	n := New(Config{Provider: ProviderAutomanaged, Name: "t"}, Options{Worker: "me",
		OnLeft: func(w string) { left = append(left, w) }})
	n.gen = 1
	n.lastBeat.Store(time.Now().UnixNano())
	n.apply(topologyEvent{gen: 1, t: topology("me~1", "a~1", "b~1", "c~1")})
	if ws := n.Workers(); len(ws) != 4 {
		t.Fatalf("workers = %+v", ws)
	}
	n.apply(topologyEvent{gen: 1, t: topology("me~1", "a~1", "b~1")})
	if !slices.Equal(left, []string{"c"}) {
		t.Fatalf("left = %v, want [c]", left)
	}
	// b joins again under a fresh id as its old one leaves: not a departure.
	left = nil
	n.apply(topologyEvent{gen: 1, t: topology("me~1", "a~1", "b~2")})
	if len(left) != 0 {
		t.Fatalf("left = %v, want none (b is a member again)", left)
	}
	if m, ok := n.Worker("b"); !ok || m.ID != "b~2" {
		t.Fatalf("worker b = %+v, %v", m, ok)
	}
	// A stalled node sees a leave: its own view lags, nothing is claimed.
	n.lastBeat.Store(time.Now().Add(-2 * stallLimit).UnixNano())
	n.apply(topologyEvent{gen: 1, t: topology("me~1", "b~2")})
	if len(left) != 0 {
		t.Fatalf("left = %v while stalled, want none", left)
	}
	n.lastBeat.Store(time.Now().UnixNano())
	// Just after a stall (its ticks on time again), the others blocking
	// this node make them leave its view: still its view lagging. It
	// asks the others at once instead.
	n.apply(topologyEvent{gen: 1, t: topology("me~1", "a~1", "b~2")})
	n.stallEnd.Store(time.Now().Add(-2 * time.Second).UnixNano())
	n.apply(topologyEvent{gen: 1, t: topology("me~1")})
	if len(left) != 0 {
		t.Fatalf("left = %v just after a stall, want none", left)
	}
	select {
	case <-n.recheck:
	default:
		t.Fatal("an ignored departure did not ask for a check of the others")
	}
	// Long after it, a departure is one again.
	n.stallEnd.Store(time.Now().Add(-afterStall - time.Second).UnixNano())
	n.apply(topologyEvent{gen: 1, t: topology("me~1", "a~1")})
	n.apply(topologyEvent{gen: 1, t: topology("me~1")})
	if !slices.Equal(left, []string{"a"}) {
		t.Fatalf("left = %v long after a stall, want [a]", left)
	}
	left = nil
	// An event of a membership left behind changes nothing.
	n.gen = 2
	n.apply(topologyEvent{gen: 1, t: topology("me~1")})
	if len(left) != 0 || len(n.Workers()) != 1 {
		t.Fatalf("a stale membership's event: left %v, workers %+v", left, n.Workers())
	}
}
