// Command saveaction runs recorded browser tests: the REST API, the worker,
// both at once for a laptop (dev), migrations, token bootstrap, and local
// replays of recording files.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `saveaction: run SaveAction recordings in Chromium, on demand and at fleet scale.

Usage:
  saveaction dev                 migrations, API and worker in one process (creates the database; prints a token)
  saveaction api                 the REST API
  saveaction worker              a worker node
  saveaction migrate [up|down|status]
  saveaction token create --email EMAIL --name NAME [--scopes a,b] [--expires-in 720h]
  saveaction run [flags] FILE... replay recordings locally (no database, no Redis)
  saveaction submit [--wait] [--junit FILE] FILE...
                                 upload recordings to a server, run them there and (--wait) follow them live
  saveaction cleanup [--older-than DURATION] [--dry-run]
                                 one artifact retention pass now; prints what it removed
  saveaction config names         every configuration variable the binary reads, one per line
  saveaction healthcheck [URL]   exit 0 when this node is ready (the image's HEALTHCHECK)
  saveaction bench fleet [flags]  a fleet of simulated workers on private servers, under churn; checks no run is lost
  saveaction version

Configuration comes from the environment (DATABASE_URL, REDIS_URL, PORT, WORKER_CONCURRENCY, ...),
each overridable by a flag of the same name, e.g. --PORT=4000. See README.md.
`

// defaultGCPercent is the garbage collector's target unless GOGC is set.
const defaultGCPercent = 400

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if os.Getenv("GOGC") == "" {
		// The nodes' live heap is a few MB, so Go's default (collect when
		// the heap doubles) ran a collection every ~20 ms under API load,
		// and its pauses and assists showed in the tail latency. Four
		// times the live heap costs tens of MB; GOGC still overrides it.
		debug.SetGCPercent(defaultGCPercent)
	}
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	nodeLog.Flush()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "dev":
		err = devCmd(ctx, rest, stdout)
	case "api":
		err = apiCmd(ctx, rest)
	case "worker":
		err = workerCmd(ctx, rest)
	case "migrate":
		err = migrateCmd(ctx, rest, stdout)
	case "token":
		err = tokenCmd(ctx, rest, stdout)
	case "run":
		return runCmd(ctx, rest, stdout, stderr)
	case "submit":
		return submitCmd(ctx, rest, stdout, stderr)
	case "cleanup":
		err = cleanupCmd(ctx, rest, stdout)
	case "config":
		err = configCmd(rest, stdout)
	case "healthcheck":
		err = healthcheckCmd(ctx, rest, stdout)
	case "bench":
		return benchCmd(ctx, rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "saveaction", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "saveaction: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "saveaction "+cmd+":", err)
		return 1
	}
	return 0
}
