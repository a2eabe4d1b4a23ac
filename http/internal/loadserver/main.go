// Command loadserver serves the API on a loopback port over a fresh,
// seeded database, for measuring it with a load generator such as wrk:
//
//	go run ./http/internal/loadserver -addr 127.0.0.1:3901 -runs 100000
//
// It prints one JSON line with the token, a run id and a recording id, then
// serves until interrupted, when it drops its database and Redis keys.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	apihttp "github.com/saveaction/runner/http"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadserver:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:3901", "listen address")
	pg := flag.String("pg", "postgres://root@127.0.0.1:5432/%s?sslmode=disable", "PostgreSQL URL pattern (%s = database)")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	nRuns := flag.Int("runs", 100_000, "runs to seed for the user")
	fixture := flag.String("recording", "http/testdata/login.json", "recording to upload")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the serving time to this file")
	logFile := flag.String("log", "", "write the JSON access log to this file (default: formatted, then dropped)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	suffix := randomHex(5)
	dsn := fmt.Sprintf(*pg, "sa_load_"+suffix)
	if err := persistence.EnsureDatabase(ctx, dsn); err != nil {
		return err
	}
	defer func() { _ = persistence.DropDatabase(context.Background(), dsn) }()
	db, err := persistence.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := persistence.MigrateUp(ctx, db, io.Discard); err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: *redisAddr})
	defer rdb.Close()
	prefix := "sa_load_" + suffix + ":"
	defer func() { cleanRedis(rdb, prefix) }()

	user, err := persistence.EnsureUser(ctx, db, "load@example.com", "Load")
	if err != nil {
		return err
	}
	token, _, err := persistence.CreateToken(ctx, db, user.ID, "load", persistence.AllScopes, nil)
	if err != nil {
		return err
	}
	var logOut io.Writer = io.Discard
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		logOut = f
	}
	app, err := apihttp.New(apihttp.Config{
		DB: db, Dispatcher: queue.New(rdb, prefix), Redis: rdb, RedisPrefix: prefix,
		// Access logs are formatted as in production, then dropped.
		Logger:   slog.New(slog.NewJSONHandler(logOut, nil)),
		Registry: prometheus.NewRegistry(), Version: "load", RateLimitPerMinute: 1 << 30,
	})
	if err != nil {
		return err
	}
	data, err := os.ReadFile(*fixture)
	if err != nil {
		return err
	}
	recID, runID, err := seed(ctx, app, db, token, user.ID, data, *nRuns)
	if err != nil {
		return err
	}
	out, _ := json.Marshal(map[string]string{"base": "http://" + *addr, "token": token, "recordingId": recID, "runId": runID})
	fmt.Println(string(out))

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	errc := make(chan error, 1)
	go func() { errc <- app.Listen(*addr) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	return app.ShutdownWithTimeout(5 * time.Second)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func cleanRedis(rdb *redis.Client, prefix string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		_ = rdb.Del(ctx, iter.Val()).Err()
	}
}

// seed uploads the recording and queues one run through the API, then bulk
// inserts n runs of the user.
func seed(ctx context.Context, app *fiber.App, db *bun.DB, token string, userID uuid.UUID, data []byte, n int) (recID, runID string, err error) {
	call := func(method, path string, body []byte) (map[string]any, error) {
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := app.Test(req, -1)
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		var out struct {
			Data map[string]any `json:"data"`
		}
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode >= 300 {
			return nil, fmt.Errorf("%s %s: %d %v", method, path, res.StatusCode, err)
		}
		return out.Data, nil
	}
	rec, err := call("POST", "/api/v1/recordings", data)
	if err != nil {
		return "", "", err
	}
	recID = rec["id"].(string)
	run, err := call("POST", "/api/v1/runs", []byte(`{"recordingId":"`+recID+`"}`))
	if err != nil {
		return "", "", err
	}
	_, err = db.ExecContext(ctx, `
		INSERT INTO runs (user_id, recording_id, recording_name, recording_url, status, attempt, started_at, completed_at, created_at, updated_at)
		SELECT ?, ?, 'load', 'https://x/',
			(ARRAY['queued','running','passed','failed','cancelled']::run_status[])[1 + g % 5],
			CASE WHEN g % 5 = 0 THEN 0 ELSE 1 END,
			CASE WHEN g % 5 = 0 THEN NULL ELSE now() - g * interval '1 second' END,
			CASE WHEN g % 5 IN (0, 1) THEN NULL ELSE now() - g * interval '1 second' + interval '500 ms' END,
			now() - g * interval '1 second', now() - g * interval '1 second'
		FROM generate_series(1, ?) AS g`, userID, recID, n)
	if err != nil {
		return "", "", fmt.Errorf("seed runs: %w", err)
	}
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE runs"); err != nil {
		return "", "", err
	}
	return recID, run["id"].(string), nil
}
