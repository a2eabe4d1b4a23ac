package fleetsim

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/saveaction/runner/persistence"
)

// snapshot is the counters read before and after a measured phase.
type snapshot struct {
	at         time.Time
	pgCalls    map[string]float64 // pg_stat_statements calls by query
	pgXacts    float64            // xact_commit + xact_rollback of the database
	redisCalls map[string]float64 // INFO commandstats calls by command
	cpu        map[string]float64 // CPU seconds by component
}

// idleRates is what the fleet costs per second with no run to do.
type idleRates struct {
	pgPerSec, redisPerSec float64
}

func (d *driver) redis() *redis.Client {
	// Generous timeouts: the host may be loaded far past its cores.
	return redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", d.rds.port), MaxRetries: 3,
		DialTimeout: 20 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
}

func (d *driver) db(ctx context.Context) (*sql.DB, error) {
	db, err := persistence.Open(ctx, d.pg.dsn())
	if err != nil {
		return nil, err
	}
	return db.DB, nil
}

func (d *driver) snapshot(ctx context.Context) (*snapshot, error) {
	s := &snapshot{at: time.Now(), pgCalls: map[string]float64{}, redisCalls: map[string]float64{}, cpu: map[string]float64{}}
	db, err := d.db(ctx)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT query, sum(calls) FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'saveaction')
		  AND query NOT ILIKE '%pg_stat%' AND query NOT ILIKE '%pg_database%' AND query NOT ILIKE '%pg_total_relation_size%'
		GROUP BY query`)
	if err != nil {
		return nil, fmt.Errorf("pg_stat_statements: %w", err)
	}
	for rows.Next() {
		var q string
		var n float64
		if err := rows.Scan(&q, &n); err != nil {
			rows.Close()
			return nil, err
		}
		s.pgCalls[q] = n
	}
	rows.Close()
	if err := db.QueryRowContext(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'saveaction'`).Scan(&s.pgXacts); err != nil {
		return nil, err
	}
	rc := d.redis()
	defer rc.Close()
	info, err := rc.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO: %w", err)
	}
	// commandstats also counts the commands a script runs: count what
	// clients sent. The project's scripts are the event publish (XADD,
	// PEXPIRE) and the ack (XACK, XDEL); nothing else sends PEXPIRE, and
	// XACK and XDEL come otherwise only with a dead letter (rare), so their
	// calls are the scripts' inner calls.
	defer func() {
		inner := s.redisCalls["pexpire"]
		s.redisCalls["xadd"] -= inner
		delete(s.redisCalls, "pexpire")
		delete(s.redisCalls, "xack")
		delete(s.redisCalls, "xdel")
	}()
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		name, rest, _ := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseFloat(v, 64)
				s.redisCalls[name] = n
			}
		}
	}
	d.mu.Lock()
	procs := append([]*proc(nil), d.procs...)
	d.mu.Unlock()
	for _, p := range procs {
		if !p.exited() {
			s.cpu[p.kind] += cpuSeconds(p.pid())
		}
	}
	if pid := d.rds.pid(); pid != 0 {
		s.cpu["redis"] = cpuSeconds(pid)
	}
	if pm := d.pg.postmasterPID(); pm != 0 {
		s.cpu["postgres"] = cpuSeconds(pm)
		for _, c := range childrenOf(pm) {
			s.cpu["postgres"] += cpuSeconds(c)
		}
	}
	return s, nil
}

func sum(m map[string]float64) float64 {
	t := 0.0
	for _, v := range m {
		t += v
	}
	return t
}

// idleRates measures the fleet doing nothing for a while.
func (d *driver) idleRates(ctx context.Context, during time.Duration) (idleRates, error) {
	a, err := d.snapshot(ctx)
	if err != nil {
		return idleRates{}, err
	}
	time.Sleep(during)
	b, err := d.snapshot(ctx)
	if err != nil {
		return idleRates{}, err
	}
	sec := b.at.Sub(a.at).Seconds()
	return idleRates{pgPerSec: (sum(b.pgCalls) - sum(a.pgCalls)) / sec, redisPerSec: (sum(b.redisCalls) - sum(a.redisCalls)) / sec}, nil
}

// Count is one statement or command and how often it ran per run.
type Count struct {
	What   string
	PerRun float64
}

// Report is what one driver run measured and found.
type Report struct {
	Workers, Slots, APINodes, Actions int
	Rate                              float64
	Created, Refused, CancelsAccepted int
	PushSeconds, DrainSeconds         float64
	Statuses                          map[string]int
	// Dispatch is queued → running of first attempts, in ms.
	DispatchP50, DispatchP99, DispatchMax float64
	// Overhead is a run's time from creation to completion beyond its
	// replay, in ms.
	OverheadP50, OverheadP99 float64
	// Per run over the measured phase, after subtracting the idle rate.
	PGStatementsPerRun, PGTransactionsPerRun, RedisCommandsPerRun float64
	IdlePGPerSec, IdleRedisPerSec                                 float64
	TopStatements, TopCommands                                    []Count
	// CPUPercent is each component's CPU over the measured phase, in % of
	// one core.
	CPUPercent map[string]float64
	// CPUMsPerRun is each component's CPU time per run created, in ms.
	CPUMsPerRun map[string]float64
	// LoadAverage is the host's load averages at the end (the machine may
	// be shared: latencies mean little when it exceeds the cores).
	LoadAverage               string
	StreamLength, DeadLetters int64
	RunsBytes, ActionsBytes   int64
	RunsPerSecondDone         float64
	Churn                     []string
	// QueueAge compares the exported queue gauges with PostgreSQL's truth,
	// sampled through the push and drain (nil: not sampled).
	QueueAge *QueueAge
	Problems []string
}

func (d *driver) report(ctx context.Context, before, after *snapshot, idle idleRates) *Report {
	cfg := d.cfg
	r := &Report{Workers: cfg.Workers, Slots: cfg.Slots, APINodes: cfg.APINodes, Actions: cfg.Actions, Rate: cfg.Rate,
		Created: d.createdCount(), Refused: int(d.rejected.Load()), CancelsAccepted: int(d.cancelled.Load()),
		Statuses: map[string]int{}, CPUPercent: map[string]float64{}, CPUMsPerRun: map[string]float64{}, IdlePGPerSec: idle.pgPerSec, IdleRedisPerSec: idle.redisPerSec}
	d.mu.Lock()
	r.Churn = append(r.Churn, d.churn...)
	d.mu.Unlock()
	sec := after.at.Sub(before.at).Seconds()
	if r.Created > 0 {
		n := float64(r.Created)
		r.PGStatementsPerRun = (sum(after.pgCalls) - sum(before.pgCalls) - idle.pgPerSec*sec) / n
		r.PGTransactionsPerRun = (after.pgXacts - before.pgXacts) / n
		r.RedisCommandsPerRun = (sum(after.redisCalls) - sum(before.redisCalls) - idle.redisPerSec*sec) / n
		r.TopStatements = top(before.pgCalls, after.pgCalls, n, 14, 110)
		r.TopCommands = top(before.redisCalls, after.redisCalls, n, 14, 0)
	}
	for k, v := range after.cpu {
		r.CPUPercent[k] = 100 * (v - before.cpu[k]) / sec
		if r.Created > 0 {
			r.CPUMsPerRun[k] = 1000 * (v - before.cpu[k]) / float64(r.Created)
		}
	}
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.LoadAverage = strings.Join(strings.Fields(string(raw))[:3], " ")
	}
	d.check(ctx, r)
	return r
}

// top is the statements (or commands) that ran most per run.
func top(before, after map[string]float64, runs float64, n, width int) []Count {
	var out []Count
	for q, v := range after {
		if dv := v - before[q]; dv > 0 {
			what := strings.Join(strings.Fields(q), " ")
			if width > 0 && len(what) > width {
				what = what[:width] + "…"
			}
			out = append(out, Count{What: what, PerRun: dv / runs})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PerRun > out[j].PerRun })
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// Write prints the report.
func (r *Report) Write(w io.Writer) {
	fmt.Fprintf(w, "fleet: %d workers × %d slots, %d API nodes, %d actions per run\n", r.Workers, r.Slots, r.APINodes, r.Actions)
	fmt.Fprintf(w, "runs: %d created (%d refused during outages), push %.1fs at %.1f/s, drain %.1fs\n",
		r.Created, r.Refused, r.PushSeconds, r.Rate, r.DrainSeconds)
	keys := make([]string, 0, len(r.Statuses))
	for k := range r.Statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-10s %d\n", k, r.Statuses[k])
	}
	fmt.Fprintf(w, "dispatch (queued→running, first attempts): p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", r.DispatchP50, r.DispatchP99, r.DispatchMax)
	fmt.Fprintf(w, "overhead (created→completed minus replay): p50 %.1f ms, p99 %.1f ms\n", r.OverheadP50, r.OverheadP99)
	fmt.Fprintf(w, "per run: %.1f PostgreSQL statements (%.1f transactions), %.1f Redis commands (idle fleet: %.0f statements/s, %.0f commands/s subtracted)\n",
		r.PGStatementsPerRun, r.PGTransactionsPerRun, r.RedisCommandsPerRun, r.IdlePGPerSec, r.IdleRedisPerSec)
	for _, c := range r.TopStatements {
		fmt.Fprintf(w, "  pg    %6.2f  %s\n", c.PerRun, c.What)
	}
	for _, c := range r.TopCommands {
		fmt.Fprintf(w, "  redis %6.2f  %s\n", c.PerRun, c.What)
	}
	comps := make([]string, 0, len(r.CPUPercent))
	for k := range r.CPUPercent {
		comps = append(comps, k)
	}
	sort.Strings(comps)
	fmt.Fprint(w, "CPU (% of one core):")
	for _, k := range comps {
		fmt.Fprintf(w, " %s %.1f", k, r.CPUPercent[k])
	}
	fmt.Fprint(w, "\nCPU per run (ms):")
	for _, k := range comps {
		fmt.Fprintf(w, " %s %.1f", k, r.CPUMsPerRun[k])
	}
	fmt.Fprintf(w, "\nhost load average: %s\n", r.LoadAverage)
	fmt.Fprintf(w, "sizes: stream %d entries, dead letters %d, runs %d KiB, run_actions %d KiB\n",
		r.StreamLength, r.DeadLetters, r.RunsBytes>>10, r.ActionsBytes>>10)
	if r.QueueAge != nil {
		r.QueueAge.write(w)
	}
	for _, c := range r.Churn {
		fmt.Fprintf(w, "churn %s\n", c)
	}
	if len(r.Problems) == 0 {
		fmt.Fprintln(w, "OK: no run lost, stuck, run twice at once, or with duplicate or missing rows")
		return
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "PROBLEM: %s\n", p)
	}
}
