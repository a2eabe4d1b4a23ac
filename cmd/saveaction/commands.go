package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	nethttp "net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/saveaction/runner/actors"
	"github.com/saveaction/runner/examples"
	"github.com/saveaction/runner/persistence"
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

// startNode opens the backends of a long-running node and makes it an
// actor remote node, so cancel messages can cross between API and workers.
func startNode(ctx context.Context, name string, args []string) (*backends, *actor.ActorSystem, error) {
	cfg, _, err := loadConfig(name, args, nil)
	if err != nil {
		return nil, nil, err
	}
	log := newLogger(cfg, os.Stderr)
	if name == "worker" {
		log = log.With("worker", cfg.WorkerName)
	}
	b, err := openBackends(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	sys := actors.NewSystem(log)
	_, addr, err := actors.StartRemote(sys, cfg.ActorHost, cfg.ActorPort, cfg.ActorAdvertised)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	log.Info("actor node started", "address", addr)
	return b, sys, nil
}

func apiCmd(ctx context.Context, args []string) error {
	b, sys, err := startNode(ctx, "api", args)
	if err != nil {
		return err
	}
	defer b.Close()
	app, _, err := startAPI(b, &actors.Canceller{System: sys, Runs: b.runs}, newRegistry())
	if err != nil {
		return err
	}
	<-ctx.Done()
	b.log.Info("shutting down API")
	return app.ShutdownWithTimeout(10 * time.Second)
}

func workerCmd(ctx context.Context, args []string) error {
	b, sys, err := startNode(ctx, "worker", args)
	if err != nil {
		return err
	}
	defer b.Close()
	n, err := startWorker(ctx, b, sys, newRegistry(), true)
	if err != nil {
		return err
	}
	<-ctx.Done()
	b.log.Info("shutting down worker", "grace", b.cfg.ShutdownGrace)
	n.stop(b.log, b.cfg.ShutdownGrace)
	return nil
}

// devCmd is the laptop mode: database created and migrated, API and worker
// in one process, the examples/ demo site served, and a token printed.
func devCmd(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, _, err := loadConfig("dev", args, map[string]string{"HOST": "127.0.0.1", "LOG_FORMAT": "text", "SHUTDOWN_GRACE_SECONDS": "5"})
	if err != nil {
		return err
	}
	log := newLogger(cfg, os.Stderr)
	if err := persistence.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	b, err := openBackends(ctx, cfg, log)
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

	demo, err := serveDemo(cfg, log)
	if err != nil {
		return err
	}
	defer demo.Close()

	sys := actors.NewSystem(log)
	reg := newRegistry()
	n, err := startWorker(ctx, b, sys, reg, false)
	if err != nil {
		return err
	}
	app, ln, err := startAPI(b, &actors.Canceller{System: sys, Runs: b.runs}, reg)
	if err != nil {
		n.stop(log, 0)
		return err
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, `
SaveAction Runner is up (dev mode: API and worker in one process).
  API:   %s/api/v1   (health: %s/api/health, metrics: %s/metrics)
  Demo:  http://%s/  (the page examples/demo-recording.json was recorded on)
  Token: %s

  export SA_TOKEN=%s
  curl -s -H "Authorization: Bearer $SA_TOKEN" -H 'Content-Type: application/json' \
       --data-binary @examples/demo-recording.json %s/api/v1/recordings
Press Ctrl-C to stop.
`, base, base, base, demo.Addr, token, token, base)

	<-ctx.Done()
	log.Info("shutting down")
	n.stop(log, cfg.ShutdownGrace)
	return app.ShutdownWithTimeout(5 * time.Second)
}

// serveDemo serves the examples/ demo site that the example recordings use.
func serveDemo(cfg *Config, log *slog.Logger) (*nethttp.Server, error) {
	if cfg.DemoPort == 0 {
		return &nethttp.Server{}, nil
	}
	srv := &nethttp.Server{
		Addr:              cfg.Host + ":" + strconv.Itoa(cfg.DemoPort),
		Handler:           nethttp.FileServerFS(examples.Site()),
		ReadHeaderTimeout: 5 * time.Second,
	}
	ln, err := listen(srv.Addr)
	if err != nil {
		return nil, fmt.Errorf("DEMO_PORT %d: %w", cfg.DemoPort, err)
	}
	go func() { _ = srv.Serve(ln) }()
	log.Info("demo site listening", "address", "http://"+srv.Addr+"/")
	return srv, nil
}
