package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/saveaction/runner/actors"
	api "github.com/saveaction/runner/http"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/service"
)

func migrateCmd(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, rest, err := loadConfig("migrate", args, nil)
	if err != nil {
		return err
	}
	dir := "up"
	if len(rest) > 0 {
		dir = rest[0]
	}
	if dir == "up" {
		if err := persistence.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
			return fmt.Errorf("DATABASE_URL: %w", err)
		}
	}
	db, err := persistence.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer db.Close()
	switch dir {
	case "up":
		return persistence.MigrateUp(ctx, db, stdout)
	case "down":
		return persistence.MigrateDown(ctx, db, stdout)
	case "status":
		return persistence.MigrateStatus(ctx, db, stdout)
	default:
		return fmt.Errorf("unknown direction %q: use up, down or status", dir)
	}
}

func tokenCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: saveaction token create --email EMAIL --name NAME [--scopes a,b] [--expires-in DURATION]")
	}
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	email := fs.String("email", "", "owner's email; the user is created if needed")
	name := fs.String("name", "", "token name, e.g. ci")
	scopes := fs.String("scopes", strings.Join(persistence.AllScopes, ","), "comma list of scopes")
	expires := fs.Duration("expires-in", 0, "lifetime, e.g. 720h (0 = never expires)")
	var cfgArgs []string
	var own []string
	for _, a := range args[1:] {
		if isConfigFlag(a) {
			cfgArgs = append(cfgArgs, a)
		} else {
			own = append(own, a)
		}
	}
	if err := fs.Parse(own); err != nil {
		return err
	}
	if *email == "" || *name == "" {
		return errors.New("--email and --name are required")
	}
	sc, err := persistence.ParseScopes(*scopes)
	if err != nil {
		return fmt.Errorf("--scopes: %w", err)
	}
	cfg, _, err := loadConfig("token", cfgArgs, nil)
	if err != nil {
		return err
	}
	db, err := persistence.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer db.Close()
	user, err := persistence.EnsureUser(ctx, db, *email, "")
	if err != nil {
		return err
	}
	var exp *time.Time
	if *expires > 0 {
		t := time.Now().Add(*expires).UTC()
		exp = &t
	}
	plain, _, err := persistence.CreateToken(ctx, db, user.ID, *name, sc, exp)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, plain)
	return nil
}

// isConfigFlag tells a configuration flag (--DATABASE_URL=...) from a command's own.
func isConfigFlag(a string) bool {
	k := strings.TrimLeft(a, "-")
	k, _, _ = strings.Cut(k, "=")
	_, ok := configDefaults[k]
	return ok && strings.HasPrefix(a, "-")
}

// nodeConfig reads the configuration of a long-running node and makes its
// logger.
func nodeConfig(name string, args []string, overrides map[string]string) (*Config, *slog.Logger, error) {
	cfg, _, err := loadConfig(name, args, overrides)
	if err != nil {
		return nil, nil, err
	}
	log := newLogger(cfg, nodeLog)
	if name == "worker" || name == "dev" {
		log = slog.New(withDefaultAttr(log.Handler(), slog.String("worker", cfg.WorkerName)))
	}
	redis.SetLogger(redisLogger{log: log})
	return cfg, log, nil
}

// apiCmd is the REST API: the actor remote (to reach workers with cancel
// messages), then the HTTP server. It starts with PostgreSQL or Redis down
// and answers 503 for what needs them until they are back.
func apiCmd(ctx context.Context, args []string) error {
	cfg, log, err := nodeConfig("api", args, nil)
	if err != nil {
		return err
	}
	b, err := openBackends(ctx, cfg, log, false)
	if err != nil {
		return err
	}
	defer b.Close()
	sys := actors.NewSystem(log)
	svcs := []service.Service{remoteService(sys, cfg, log)}
	var fleet api.Fleet
	canceller := &actors.Canceller{System: sys, Runs: b.runs}
	if cfg.Cluster.Enabled() {
		node, membership := clusterService(cfg, sys, log, nil, nil)
		svcs = append(svcs, membership)
		cf := clusterFleet{node: node}
		fleet, canceller.Route = cf, cf.route
	}
	httpAPI, err := apiServer(b, canceller, newRegistry(), fleet)
	if err != nil {
		return err
	}
	return service.NewGroup(log, append(svcs, httpAPI)...).Run(ctx)
}

// workerCmd is a worker node: the actor remote, the metrics endpoint, the
// coordinator with its browsers, and the reconciler loop, stopped in the
// reverse order (the drain runs while metrics are still served).
func workerCmd(ctx context.Context, args []string) error {
	cfg, log, err := nodeConfig("worker", args, nil)
	if err != nil {
		return err
	}
	b, err := openBackends(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer b.Close()
	sys := actors.NewSystem(log)
	reg := newRegistry()
	m := actors.NewMetrics(reg)
	var worker atomic.Pointer[actors.Worker]
	// The remote and the membership start first and stop last: a worker
	// draining on SIGTERM stays a member until its runs are handed back, so
	// no survivor takes them over while they still run here.
	svcs := []service.Service{remoteService(sys, cfg, log)}
	var ownAddrs func() []string
	// The queue's gauges are the fleet's, exported by one node: the
	// maintenance singleton, or without a cluster the reconciler's lock
	// holder.
	rec := newReconciler(b, m)
	holder := rec.HoldsLock
	if cfg.Cluster.Enabled() {
		// The reconciler and artifact retention run as the cluster's one
		// maintenance identity, each keeping its Redis lock as the fence
		// for the overlap of a topology change.
		node, membership := clusterService(cfg, sys, log, &worker, maintenance(rec.Run, newRetention(b).Run))
		holder = func(context.Context) bool { return node.MaintenanceHere() }
		svcs = append(svcs, membership)
		ownAddrs = func() []string { return []string{node.System().Address()} }
	}
	reg.MustRegister(actors.NewQueueMetrics(b.queue, holder, log))
	if cfg.MetricsPort != 0 {
		svcs = append(svcs, metricsServer(cfg, reg, log))
	}
	svcs = append(svcs, workerService(b, sys, reg, m, cfg.MetricsPort != 0, &worker, ownAddrs))
	if !cfg.Cluster.Enabled() {
		svcs = append(svcs, reconcilerService(b, m), retentionService(b))
	}
	return service.NewGroup(log, svcs...).Run(ctx)
}

// devCmd is the laptop mode: database created and migrated, API and worker
// in one process, the examples/ demo site served, and a token printed.
func devCmd(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, log, err := nodeConfig("dev", args, map[string]string{"HOST": "127.0.0.1", "LOG_FORMAT": "text", "SHUTDOWN_GRACE_SECONDS": "5"})
	if err != nil {
		return err
	}
	if err := persistence.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	b, err := openBackends(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := persistence.MigrateUp(ctx, b.db, io.Discard); err != nil {
		return err
	}
	user, err := persistence.EnsureUser(ctx, b.db, "dev@localhost", "Developer")
	if err != nil {
		return err
	}
	token, _, err := persistence.CreateToken(ctx, b.db, user.ID, "dev "+time.Now().UTC().Format(time.RFC3339), persistence.AllScopes, nil)
	if err != nil {
		return err
	}

	// One process, one actor system: no remote. Worker metrics are served
	// by the API's /metrics from the shared registry.
	sys := actors.NewSystem(log)
	reg := newRegistry()
	m := actors.NewMetrics(reg)
	reg.MustRegister(actors.NewQueueMetrics(b.queue, newReconciler(b, m).HoldsLock, log))
	var worker atomic.Pointer[actors.Worker]
	httpAPI, err := apiServer(b, &actors.Canceller{System: sys, Runs: b.runs}, reg, localFleet{worker: worker.Load})
	if err != nil {
		return err
	}
	var svcs []service.Service
	demoAddr := "(off: DEMO_PORT=0)"
	var demo *service.Server
	if cfg.DemoPort != 0 {
		demo = demoServer(cfg, log)
		svcs = append(svcs, demo)
	}
	svcs = append(svcs, workerService(b, sys, reg, m, false, &worker, nil), reconcilerService(b, m), retentionService(b), httpAPI)
	g := service.NewGroup(log, svcs...)
	if err := g.Start(ctx); err != nil {
		return err
	}
	if demo != nil {
		demoAddr = "http://" + demo.Addr().String() + "/"
	}
	base := "http://" + httpAPI.Addr().String()
	fmt.Fprintf(stdout, `
SaveAction Runner is up (dev mode: API and worker in one process).
  API:   %s/api/v1   (health: %s/api/health, metrics: %s/metrics)
  Demo:  %s  (the page examples/demo-recording.json was recorded on)
  Token: %s

  export SA_TOKEN=%s
  curl -s -H "Authorization: Bearer $SA_TOKEN" -H 'Content-Type: application/json' \
       --data-binary @examples/demo-recording.json %s/api/v1/recordings
Press Ctrl-C to stop.
`, base, base, base, demoAddr, token, token, base)
	return g.Wait(ctx)
}

// cleanupCmd runs one retention pass now and prints what it removed.
func cleanupCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	olderThan := fs.String("older-than", "", "remove artifacts of runs finished longer ago than this, e.g. 720h or 0s (default ARTIFACT_RETENTION_DAYS)")
	dryRun := fs.Bool("dry-run", false, "print what would be removed and remove nothing")
	var cfgArgs, own []string
	for _, a := range args {
		if isConfigFlag(a) {
			cfgArgs = append(cfgArgs, a)
		} else {
			own = append(own, a)
		}
	}
	if err := fs.Parse(own); err != nil {
		return err
	}
	cfg, _, err := loadConfig("cleanup", cfgArgs, nil)
	if err != nil {
		return err
	}
	age := cfg.ArtifactRetention
	if age == 0 {
		age = -1 // keep forever: orphans only
	}
	if *olderThan != "" {
		if age, err = time.ParseDuration(*olderThan); err != nil || age < 0 {
			return fmt.Errorf("--older-than=%q: must be a duration such as 720h or 0s", *olderThan)
		}
	}
	log := newLogger(cfg, os.Stderr)
	b, err := openBackends(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer b.Close()
	rep, err := newRetention(b).Once(ctx, age, *dryRun)
	if err != nil {
		return err
	}
	if rep.Skipped {
		return errors.New("another node is running retention now (its Redis lock is held); try again later")
	}
	verb := "removed"
	if rep.DryRun {
		verb = "would remove"
	}
	for _, k := range rep.Keys {
		fmt.Fprintf(stdout, "%s %s\n", verb, k)
	}
	fmt.Fprintf(stdout, "%s %d files (%d bytes) of %d expired runs and %d orphans from the %s store; %d failed\n",
		verb, rep.Files, rep.Bytes, rep.Runs, rep.Orphans, b.store.Kind(), rep.Failed)
	if rep.Failed > 0 {
		return fmt.Errorf("%d files could not be removed (see the log); the next pass retries them", rep.Failed)
	}
	return nil
}
