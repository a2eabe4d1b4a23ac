package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/saveaction/runner/persistence"
)

type liveView struct {
	RunID         string  `json:"runId"`
	Status        string  `json:"status"`
	Attempt       int     `json:"attempt"`
	Worker        string  `json:"worker"`
	Source        string  `json:"source"`
	Phase         *string `json:"phase"`
	ActionsTotal  int     `json:"actionsTotal"`
	ActionsDone   int     `json:"actionsDone"`
	CurrentAction *struct {
		Index int    `json:"index"`
		ID    string `json:"id"`
		Type  string `json:"type"`
	} `json:"currentAction"`
	StartedAt *time.Time `json:"startedAt"`
	ElapsedMs *int64     `json:"elapsedMs"`
	Note      string     `json:"note"`
}

// GET /runs/:id/live asks a running run's owner what it is doing: with a
// cluster through it (the actor address stored on the run is made stale,
// so only the cluster route can answer), without one at that address. The
// owner's actionsDone moves while it runs; with the owner killed -9 (one
// worker: nobody takes the run over, its 60 s lease holds it running) the
// API answers from PostgreSQL at once, never a 500. Another user's run is
// 404. Latency of the owner's answer: p50/p95 over 20 requests.
func TestClusterLiveStatusFromTheOwner(t *testing.T) {
	for _, provider := range []string{"none", "automanaged", "etcd"} {
		t.Run(provider, func(t *testing.T) {
			var ct *clusterTest
			if provider == "none" {
				ct = &clusterTest{fleet: newFleet(t, "LEASE_SECONDS=60"), workerEnv: func(int) []string { return nil }}
			} else {
				ct = newClusterTest(t, provider, 1, "LEASE_SECONDS=60")
			}
			w := ct.worker("lv-a", append(ct.workerEnv(0), "WORKER_CONCURRENCY=1")...)
			if provider != "none" {
				ct.waitWorkers(60*time.Second, "lv-a")
			}
			db, err := persistence.Open(context.Background(), ct.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			id := ct.createRun(ct.slowRecording(30), map[string]any{"timingMode": "realistic", "timeout": 5000})
			ct.waitFor(id, 60*time.Second, "running", func(r runView) bool { return r.Status == "running" && r.WorkerNode != "" })
			if provider != "none" {
				if _, err := db.NewRaw("UPDATE runs SET actor_address = '127.0.0.1:9', actor_id = 'stale' WHERE id = ?", id).
					Exec(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			live := func() (liveView, time.Duration) {
				var v liveView
				at := time.Now()
				ct.api.call("GET", "/api/v1/runs/"+id+"/live", nil, 200, &v)
				return v, time.Since(at)
			}
			// The owner answers, and its progress moves.
			var first liveView
			deadline := time.Now().Add(30 * time.Second)
			for {
				first, _ = live()
				if first.Source == "owner" && first.Phase != nil && *first.Phase == "replaying" && first.ActionsDone >= 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("live status never came from a replaying owner: %+v", first)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if first.Status != "running" || first.Worker != "lv-a" || first.Attempt != 1 || first.ActionsTotal != 30 ||
				first.StartedAt == nil || first.ElapsedMs == nil || first.RunID != id {
				t.Fatalf("owner's live status = %+v", first)
			}
			var lat []time.Duration
			var last liveView
			// The recording's gaps come before each action starts, so most
			// answers fall between actions (currentAction null); one that
			// names an action names one not yet written.
			named := 0
			for range 20 {
				v, d := live()
				lat = append(lat, d)
				if v.Source != "owner" {
					t.Fatalf("live status of a running run with its owner up = %+v", v)
				}
				if a := v.CurrentAction; a != nil {
					named++
					if a.Index < v.ActionsDone-1 || a.ID == "" || a.Type == "" {
						t.Fatalf("current action %+v with %d actions done", *a, v.ActionsDone)
					}
				}
				last = v
				time.Sleep(100 * time.Millisecond)
			}
			if last.ActionsDone <= first.ActionsDone {
				t.Fatalf("actionsDone did not move: %d then %d over 2 s", first.ActionsDone, last.ActionsDone)
			}
			t.Logf("%s: live status from the owner, 20 requests: p50 %s p95 %s (actionsDone %d -> %d; %d named a current action)",
				provider, pct(lat, 50), pct(lat, 95), first.ActionsDone, last.ActionsDone, named)

			// Another user's run is not found.
			out, err := ct.command("token", "create", "--email", "other@example.com", "--name", "other").Output()
			if err != nil {
				t.Fatal(err)
			}
			other := &devNode{t: t, base: ct.api.base, token: strings.TrimSpace(string(out))}
			other.call("GET", "/api/v1/runs/"+id+"/live", nil, 404, nil)

			// The owner killed: the database answers, promptly.
			if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			w.exited(10 * time.Second)
			for i := range 5 {
				v, d := live()
				if v.Source != "database" || v.Status != "running" || v.Attempt != 1 || v.Worker != "lv-a" ||
					v.ActionsTotal != 30 || v.ActionsDone < last.ActionsDone || v.Phase != nil {
					t.Fatalf("live status with the owner killed = %+v", v)
				}
				if d > 5*time.Second {
					t.Fatalf("live status with the owner killed took %s", d)
				}
				if i == 0 {
					t.Logf("%s: owner killed -9: answered from the database in %s (%s)", provider, d, v.Note)
				}
			}
		})
	}
}
