package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/saveaction/runner/actors"
	"github.com/saveaction/runner/cluster"
	api "github.com/saveaction/runner/http"
	"github.com/saveaction/runner/persistence"
)

// askTimeout bounds one question to a worker node; a node that does not
// answer in time is left out of the fleet view.
const askTimeout = 2 * time.Second

// clusterFleet is the fleet view from cluster membership: the live worker
// members, each asked for its state.
type clusterFleet struct {
	node *cluster.Node
}

func (f clusterFleet) pid(m cluster.Member) *actor.PID {
	return actor.NewPID(m.Address, actors.CoordinatorName(m.Worker))
}

// route finds the coordinator of a live worker member, for cancel.
func (f clusterFleet) route(worker string) (*actor.ActorSystem, *actor.PID, bool) {
	m, ok := f.node.Worker(worker)
	if !ok {
		return nil, nil, false
	}
	return f.node.System(), f.pid(m), true
}

// Workers asks every live worker member at once.
func (f clusterFleet) Workers(ctx context.Context) (api.FleetView, error) {
	members := f.node.Workers()
	out := make([]*api.Worker, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wi, err := actors.AskWorker(f.node.System(), f.pid(m), &actors.WorkerInfoRequest{}, askTimeout)
			if err == nil {
				w := workerView(wi, m.Address)
				out[i] = &w
			}
		}()
	}
	wg.Wait()
	v := api.FleetView{Clustered: true, Workers: []api.Worker{}}
	for _, w := range out {
		if w != nil {
			v.Workers = append(v.Workers, *w)
		}
	}
	return v, nil
}

// SetDraining finds the member by worker name and asks it.
func (f clusterFleet) SetDraining(ctx context.Context, name string, draining bool) (api.Worker, error) {
	m, ok := f.node.Worker(name)
	if !ok {
		return api.Worker{}, api.ErrWorkerNotFound
	}
	wi, err := actors.AskWorker(f.node.System(), f.pid(m), &actors.SetDraining{Draining: draining}, askTimeout)
	if err != nil {
		return api.Worker{}, fmt.Errorf("drain %s: %w", name, err)
	}
	return workerView(wi, m.Address), nil
}

// runOwners asks a running run's owner for its live status, by the same
// routes as cancel.
type runOwners struct {
	c *actors.Canceller
}

func (o runOwners) RunStatus(ctx context.Context, run *persistence.Run, timeout time.Duration) (api.OwnerStatus, error) {
	st, err := o.c.RunStatus(ctx, run, timeout)
	if err != nil {
		return api.OwnerStatus{}, err
	}
	out := api.OwnerStatus{Attempt: int(st.Attempt), Worker: st.Worker, Phase: st.Phase,
		ActionsTotal: int(st.ActionsTotal), ActionsDone: int(st.ActionsDone)}
	if st.StartedAtUnixMs != 0 {
		out.StartedAt = time.UnixMilli(st.StartedAtUnixMs).UTC()
	}
	if a := st.CurrentAction; a != nil {
		out.CurrentAction = &api.LiveAction{Index: int(a.Index), ID: a.Id, Type: a.Type}
	}
	return out, nil
}

// localFleet is the fleet view of a node without a cluster: the worker in
// this process, if any (dev mode).
type localFleet struct {
	worker func() *actors.Worker
}

func (f localFleet) Workers(ctx context.Context) (api.FleetView, error) {
	v := api.FleetView{Workers: []api.Worker{},
		Note: "no cluster is configured (CLUSTER_PROVIDER=none): only the worker in this process is shown"}
	if w := f.worker(); w != nil {
		wi, err := w.Info(askTimeout)
		if err != nil {
			return v, err
		}
		v.Workers = append(v.Workers, workerView(wi, wi.Address))
	}
	return v, nil
}

func (f localFleet) SetDraining(ctx context.Context, name string, draining bool) (api.Worker, error) {
	w := f.worker()
	if w == nil {
		return api.Worker{}, api.ErrWorkerNotFound
	}
	wi, err := w.Info(askTimeout)
	if err != nil {
		return api.Worker{}, err
	}
	if wi.Name != name {
		return api.Worker{}, api.ErrWorkerNotFound
	}
	if wi, err = w.SetDraining(draining, askTimeout); err != nil {
		return api.Worker{}, err
	}
	return workerView(wi, wi.Address), nil
}

func workerView(wi *actors.WorkerInfo, addr string) api.Worker {
	runs := wi.Runs
	if runs == nil {
		runs = []string{}
	}
	return api.Worker{Name: wi.Name, Address: addr, Version: wi.Version,
		StartedAt: time.UnixMilli(wi.StartedAtUnixMs).UTC(), Slots: int(wi.Slots), Busy: int(wi.Busy),
		Runs: runs, State: wi.State, LastSeenAt: time.Now().UTC()}
}
