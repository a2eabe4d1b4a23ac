package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// endpointKeys name the API measures for -endpoints, in their order.
var endpointKeys = []string{"get", "actions", "list", "post"}

// endpoint is one API measure.
type endpoint struct {
	name, method, path, body string
}

// apiResult holds every repetition of every (endpoint, conns, target).
type apiResult struct {
	endpoints []endpoint
	conns     []int
	targets   []string // floor, ours, [before]
	reps      map[string][]wrkResult
	runs      int
}

func apiKey(ep string, conns int, target string) string {
	return ep + "|" + strconv.Itoa(conns) + "|" + target
}

func benchAPI(ctx context.Context, c *config) (*apiResult, error) {
	suffix := randomHex(4)
	db, err := newDatabase(ctx, c.pg, "sa_bench_api_"+suffix)
	if err != nil {
		return nil, err
	}
	defer db.drop()
	prefix := "sa_bench_api_" + suffix + ":"
	defer dropRedis(c.redisAddr, prefix)

	env := map[string]string{"DATABASE_URL": db.dsn, "REDIS_URL": "redis://" + c.redisAddr + "/0"}
	if _, err := runCmd(ctx, c.bin, env, "migrate", "up"); err != nil {
		return nil, err
	}
	token, err := runCmd(ctx, c.bin, env, "token", "create", "--email", "bench@example.com", "--name", "bench")
	if err != nil {
		return nil, err
	}

	// Production defaults but for the limit, which is on and counted in
	// Redis on every request, set above what wrk reaches in a minute.
	apiEnv := func(port int, pfx string) map[string]string {
		return map[string]string{
			"DATABASE_URL": db.dsn, "REDIS_URL": "redis://" + c.redisAddr + "/0", "REDIS_PREFIX": pfx,
			"HOST": "127.0.0.1", "PORT": strconv.Itoa(port), "LOG_LEVEL": "info", "LOG_FORMAT": "json",
			"RATE_LIMIT_PER_MINUTE": "1000000",
		}
	}
	type target struct {
		name string
		base string
		tok  string
	}
	var targets []target
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	startAPI := func(name, bin, pfx string) (string, error) {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		p, err := start(name, bin, []string{"api"}, apiEnv(port, pfx), filepath.Join(c.tmp, name+".log"))
		if err != nil {
			return "", err
		}
		procs = append(procs, p)
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		return base, p.waitHTTP(ctx, base+"/api/health")
	}
	ours, err := startAPI("ours", c.bin, prefix+"a:")
	if err != nil {
		return nil, err
	}
	cl := newClient(ours, token)
	var rec struct {
		ID string `json:"id"`
	}
	if err := cl.call(ctx, "POST", "/api/v1/recordings", tenActions("http://127.0.0.1:9/static.html", "rec_bench_api"), 201, &rec); err != nil {
		return nil, err
	}
	var run struct {
		ID string `json:"id"`
	}
	if err := cl.call(ctx, "POST", "/api/v1/runs", map[string]any{"recordingId": rec.ID}, 201, &run); err != nil {
		return nil, err
	}
	userID, err := seedRuns(ctx, db.dsn, token, rec.ID, c.runs)
	if err != nil {
		return nil, err
	}
	targets = append(targets, target{"ours", ours, token})
	if c.before != "" {
		before, err := startAPI("before", c.before, prefix+"b:")
		if err != nil {
			return nil, err
		}
		targets = append(targets, target{"before", before, token})
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	floor, err := start("floor", c.floorBin, []string{
		"-addr", fmt.Sprintf("127.0.0.1:%d", port), "-db", db.dsn, "-redis", c.redisAddr,
		"-stream", prefix + "floor:runs", "-user", userID, "-recording", rec.ID,
	}, nil, "")
	if err != nil {
		return nil, err
	}
	procs = append(procs, floor)
	floorBase := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := floor.waitHTTP(ctx, floorBase+"/api/v1/runs/"+run.ID); err != nil {
		return nil, err
	}
	targets = append([]target{{"floor", floorBase, ""}}, targets...)

	res := &apiResult{conns: c.conns, reps: map[string][]wrkResult{}, runs: c.runs}
	for _, t := range targets {
		res.targets = append(res.targets, t.name)
	}
	all := []endpoint{
		{"GET /runs/:id", "GET", "/api/v1/runs/" + run.ID, ""},
		{"GET /runs/:id/actions", "GET", "/api/v1/runs/" + run.ID + "/actions", ""},
		{"GET /runs?limit=20", "GET", "/api/v1/runs?limit=20", ""},
		{"POST /runs", "POST", "/api/v1/runs", fmt.Sprintf(`{"recordingId":%q}`, rec.ID)},
	}
	for i, ep := range all {
		if c.endpoints == nil || c.endpoints[endpointKeys[i]] {
			res.endpoints = append(res.endpoints, ep)
		}
	}
	for _, ep := range res.endpoints {
		for _, n := range c.conns {
			for rep := 0; rep < c.reps; rep++ {
				// The order of targets turns each repetition so that none
				// always runs right after another's load.
				for i := range targets {
					t := targets[(i+rep)%len(targets)]
					r, err := wrkRun(ctx, c.tmp, t.base+ep.path, t.tok, ep.method, ep.body, n, c.dur)
					if err != nil {
						return nil, err
					}
					fmt.Fprintf(os.Stderr, "%-22s c=%-3d %-7s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  non2xx %d  load %s\n",
						ep.name, n, t.name, r.rps, r.p50, r.p99, r.non2xx, r.load)
					res.reps[apiKey(ep.name, n, t.name)] = append(res.reps[apiKey(ep.name, n, t.name)], r)
					// A breath between measures so one's backlog (PostgreSQL's
					// autovacuum after POSTs) does not land on the next.
					time.Sleep(time.Second)
				}
			}
		}
	}
	return res, nil
}

// seedRuns inserts n finished-looking runs of the token's user, the way a
// busy account looks, and returns the user id.
func seedRuns(ctx context.Context, dsn, token, recordingID string, n int) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var userID string
	if err := conn.QueryRow(ctx, `SELECT user_id::text FROM api_tokens ORDER BY created_at DESC LIMIT 1`).Scan(&userID); err != nil {
		return "", fmt.Errorf("find the bench user: %w", err)
	}
	_, err = conn.Exec(ctx, `
		INSERT INTO runs (user_id, recording_id, recording_name, recording_url, status, attempt, actions_total,
			started_at, completed_at, created_at, updated_at)
		SELECT $1, $2, 'bench', 'http://127.0.0.1/',
			(ARRAY['queued','running','passed','failed','cancelled']::run_status[])[1 + g % 5],
			CASE WHEN g % 5 = 0 THEN 0 ELSE 1 END, 10,
			CASE WHEN g % 5 = 0 THEN NULL ELSE now() - g * interval '1 second' END,
			CASE WHEN g % 5 IN (0, 1) THEN NULL ELSE now() - g * interval '1 second' + interval '500 ms' END,
			now() - g * interval '1 second' - interval '1 hour', now() - g * interval '1 second'
		FROM generate_series(1, $3) AS g`, userID, recordingID, n)
	if err != nil {
		return "", fmt.Errorf("seed runs: %w", err)
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE runs"); err != nil {
		return "", err
	}
	return userID, nil
}
