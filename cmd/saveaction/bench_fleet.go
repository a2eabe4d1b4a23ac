package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/saveaction/runner/fleetsim"
)

// benchCmd runs a benchmark: `saveaction bench fleet [flags]`.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "fleet" {
		fmt.Fprintln(stderr, "usage: saveaction bench fleet [flags] (see --help)")
		return 2
	}
	fs := flag.NewFlagSet("bench fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c fleetsim.Config
	fs.IntVar(&c.Workers, "workers", fleetsim.DefaultWorkers, "worker processes")
	fs.IntVar(&c.Slots, "slots", fleetsim.DefaultSlots, "runs at once per worker (WORKER_CONCURRENCY, 1-10)")
	fs.IntVar(&c.APINodes, "api", fleetsim.DefaultAPINodes, "API processes")
	fs.Float64Var(&c.Rate, "rate", fleetsim.DefaultRate, "runs created per second")
	fs.DurationVar(&c.Duration, "duration", fleetsim.DefaultDuration, "how long runs are pushed")
	fs.IntVar(&c.Actions, "actions", fleetsim.DefaultActions, "actions per recording")
	fs.Float64Var(&c.GapMs, "gap-ms", fleetsim.DefaultGapMs, "recorded pause between actions, replayed in realistic timing")
	fs.Float64Var(&c.FailureRate, "failure-rate", 0.05, "SIMULATION_FAILURE_RATE of the workers")
	fs.Float64Var(&c.CrashRate, "crash-rate", 0.01, "SIMULATION_CRASH_RATE of the workers")
	fs.DurationVar(&c.Lease, "lease", fleetsim.DefaultLease, "LEASE_SECONDS of the workers")
	fs.IntVar(&c.Kills, "kills", 0, "workers killed with SIGKILL (and restarted) during the push")
	fs.IntVar(&c.Terms, "terms", 0, "rolling SIGTERMs (each worker restarted) during the push")
	fs.BoolVar(&c.RedisRestart, "redis-restart", false, "kill and restart the private Redis (losing every key) during the push")
	fs.BoolVar(&c.PostgresRestart, "postgres-restart", false, "stop (immediate) and restart the private PostgreSQL during the push")
	fs.IntVar(&c.Cancels, "cancels", 0, "cancel requests in one burst, for the runs created last")
	fs.BoolVar(new(bool), "churn", false, "shorthand: --kills 5 --terms 3 --redis-restart --postgres-restart --cancels 50")
	fs.IntVar(&c.Backlog, "backlog", 0, "queue this many runs before any worker starts, then time the drain (replaces the push)")
	fs.DurationVar(&c.Drain, "drain", fleetsim.DefaultDrain, "how long to wait for every run to end")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if f := fs.Lookup("churn"); f.Value.String() == "true" {
		c.Kills, c.Terms, c.RedisRestart, c.PostgresRestart, c.Cancels = max(c.Kills, 5), max(c.Terms, 3), true, true, max(c.Cancels, 50)
	}
	if c.Slots > 10 || c.Workers > 500 {
		fmt.Fprintln(stderr, "bench fleet: --slots is at most 10 and --workers at most 500")
		return 2
	}
	bin, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "bench fleet:", err)
		return 1
	}
	c.Bin, c.Progress = bin, stderr
	ctx, cancel := context.WithTimeout(ctx, c.Duration+c.Drain+10*time.Minute)
	defer cancel()
	rep, err := fleetsim.Run(ctx, c)
	if err != nil {
		fmt.Fprintln(stderr, "bench fleet:", err)
		return 1
	}
	rep.Write(stdout)
	if len(rep.Problems) > 0 {
		return 1
	}
	return 0
}
