package main

import (
	"context"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saveaction/runner/persistence"
)

// cutProxy forwards a loopback port to target until cut: then it closes
// every connection and refuses new ones (the port is closed) until mend.
type cutProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	p := &cutProxy{t: t, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), target: target}
	p.mend()
	t.Cleanup(p.cut)
	return p
}

func (p *cutProxy) mend() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// A worker dropped by an API node's view alone: protoactor blocks for good
// every member a node's view saw leave, and an API node is a client that
// answers no probe, so nothing brought such a worker back to its fleet view
// and cancel routes. The damage for real: a second API node reaches one
// worker's automanaged port only through a proxy, which is cut for 3 s (a
// partition between that API node and that worker; the members still see
// each other). Within a bounded time it lists every worker again, and a
// cancel through it (the stored actor address made stale) reaches a run
// on that worker.
func TestClusterAPINodeThatDroppedAWorkerSeesItAgain(t *testing.T) {
	ct := newClusterTest(t, "automanaged", 2, "LEASE_SECONDS=60")
	names := []string{"pa-a", "pa-b"}
	for i, n := range names {
		ct.worker(n, append(ct.workerEnv(i), "WORKER_CONCURRENCY=1")...)
	}
	ct.waitWorkers(60*time.Second, names...)
	// pa-b's automanaged port, as the second API node reaches it.
	var hosts []string
	for _, e := range ct.env {
		if v, ok := strings.CutPrefix(e, "CLUSTER_HOSTS="); ok {
			hosts = strings.Split(v, ",")
		}
	}
	if len(hosts) != 2 {
		t.Fatalf("CLUSTER_HOSTS %v", hosts)
	}
	proxy := newCutProxy(t, hosts[1])
	port := freePort(t)
	ct.start("api", fmt.Sprintf("PORT=%d", port), "HOST=127.0.0.1", "CLUSTER_HOSTS="+hosts[0]+","+proxy.addr)
	api2 := &devNode{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), token: ct.ops.token}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := nethttp.Get(api2.base + "/api/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("second API node never became healthy")
		}
		time.Sleep(50 * time.Millisecond)
	}
	view2 := func() fleetView {
		var v fleetView
		api2.call("GET", "/api/v1/workers", nil, 200, &v)
		return v
	}
	waitView2 := func(within time.Duration, want int) (time.Duration, fleetView) {
		start := time.Now()
		for {
			v := view2()
			if len(v.Workers) == want {
				return time.Since(start), v
			}
			if time.Since(start) > within {
				return time.Since(start), v
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if _, v := waitView2(30*time.Second, 2); len(v.Workers) != 2 {
		t.Fatalf("second API node lists %v, want both workers", v.names())
	}
	proxy.cut()
	if _, v := waitView2(15*time.Second, 1); len(v.Workers) != 1 {
		t.Fatalf("with the proxy cut the second API node lists %v, want pa-a only", v.names())
	}
	time.Sleep(time.Second)
	proxy.mend()
	mended := time.Now()
	back, v := waitView2(30*time.Second, 2)
	if len(v.Workers) != 2 {
		t.Fatalf("the second API node lists %v 30 s after the partition healed, want both workers (the first API node: %v)",
			v.names(), ct.view().names())
	}
	t.Logf("the second API node lists both workers again %s after the partition healed", back)
	// Still listed 5 s on, not once by chance.
	time.Sleep(5 * time.Second)
	if v := view2(); len(v.Workers) != 2 {
		t.Fatalf("second API node lists %v, 5 s after it listed both again", v.names())
	}
	// A run on pa-b, cancelled through the second API node's cluster route.
	api2.call("POST", "/api/v1/workers/pa-a/drain", nil, 200, nil)
	db, err := persistence.Open(context.Background(), ct.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	id := ct.createRun(ct.slowRecording(20), map[string]any{"timingMode": "realistic", "timeout": 5000})
	r := ct.waitFor(id, 60*time.Second, "running", func(r runView) bool { return r.Status == "running" && r.WorkerNode != "" })
	if r.WorkerNode != "pa-b" {
		t.Fatalf("run on %s, want pa-b (pa-a drained)", r.WorkerNode)
	}
	if _, err := db.NewRaw("UPDATE runs SET actor_address = '127.0.0.1:9', actor_id = 'stale' WHERE id = ?", id).
		Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	api2.token = ct.api.token
	var run runView
	api2.call("POST", "/api/v1/runs/"+id+"/cancel", nil, 200, &run)
	if run.Status != "cancelled" {
		t.Fatalf("cancel through the second API node answered %+v, want cancelled", run)
	}
	t.Logf("cancel through the second API node reached pa-b %s after the partition healed", time.Since(mended))
}
