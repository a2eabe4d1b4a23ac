package fleetsim

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// maxListed bounds how many runs a problem names.
const maxListed = 10

// check reads PostgreSQL (and the replay bounds the workers logged) for
// the guarantees, and fills the figures that come from the tables.
func (d *driver) check(ctx context.Context, r *Report) {
	problem := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }
	db, err := d.db(ctx)
	if err != nil {
		problem("open database: %v", err)
		return
	}
	defer db.Close()

	// Lost: a run the API acknowledged that is not in the table, or not
	// finished. Stuck: any run not finished, ours or not.
	d.mu.Lock()
	ids := make([]string, len(d.runs))
	for i, c := range d.runs {
		ids[i] = c.id
	}
	d.mu.Unlock()
	status := map[string]string{}
	rows, err := db.QueryContext(ctx, `SELECT id::text, status::text FROM runs`)
	if err != nil {
		problem("read runs: %v", err)
		return
	}
	for rows.Next() {
		var id, st string
		_ = rows.Scan(&id, &st)
		status[id] = st
	}
	rows.Close()
	var lost, stuck []string
	for _, id := range ids {
		if _, ok := status[id]; !ok {
			lost = append(lost, id)
		}
	}
	for id, st := range status {
		r.Statuses[st]++
		if st != "passed" && st != "failed" && st != "cancelled" {
			stuck = append(stuck, id+" "+st)
		}
	}
	if len(ids) == 0 {
		problem("no run was created: nothing was tested")
	}
	if len(lost) > 0 {
		problem("%d runs lost (acknowledged, not in the database): %s", len(lost), list(lost))
	}
	if len(stuck) > 0 {
		problem("%d runs stuck (not finished after the drain): %s", len(stuck), list(stuck))
	}
	if len(status) < len(ids) {
		problem("%d runs in the database, %d acknowledged", len(status), len(ids))
	}

	// Rows: exactly actions_total rows per run, indexes 0..n-1, none
	// pending once finished, and every result written by the run's last
	// attempt (a fenced owner's write landed nowhere).
	rows, err = db.QueryContext(ctx, `SELECT r.id::text, r.actions_total, count(a.id), count(DISTINCT a.action_index),
			coalesce(min(a.action_index), -1), coalesce(max(a.action_index), -1),
			count(a.id) FILTER (WHERE a.status = 'pending'),
			count(a.id) FILTER (WHERE a.status IN ('success','failed','timeout') AND a.attempt <> r.attempt)
		FROM runs r LEFT JOIN run_actions a ON a.run_id = r.id
		WHERE r.status IN ('passed','failed','cancelled')
		GROUP BY r.id, r.actions_total`)
	if err != nil {
		problem("read rows: %v", err)
		return
	}
	var badRows, pending, stale []string
	for rows.Next() {
		var id string
		var total, n, distinct, lo, hi, pend, old int
		_ = rows.Scan(&id, &total, &n, &distinct, &lo, &hi, &pend, &old)
		if n != d.cfg.Actions || distinct != n || (n > 0 && (lo != 0 || hi != n-1)) || total != d.cfg.Actions {
			badRows = append(badRows, fmt.Sprintf("%s (%d rows, %d distinct, %d..%d, total %d)", id, n, distinct, lo, hi, total))
		}
		if pend > 0 {
			pending = append(pending, id)
		}
		if old > 0 {
			stale = append(stale, id)
		}
	}
	rows.Close()
	if len(badRows) > 0 {
		problem("%d runs with duplicate or missing action rows: %s", len(badRows), list(badRows))
	}
	if len(pending) > 0 {
		problem("%d finished runs with pending rows: %s", len(pending), list(pending))
	}
	if len(stale) > 0 {
		problem("%d runs with a result row of an earlier attempt: %s", len(stale), list(stale))
	}

	// Run twice at once: two replays of one run whose times overlap (a
	// killed worker's replay ends when it was killed).
	if twice := d.overlaps(); len(twice) > 0 {
		problem("%d runs replayed twice at once: %s", len(twice), list(twice))
	}

	// Figures from the tables.
	q := func(sql string, dest ...any) {
		if err := db.QueryRowContext(ctx, sql).Scan(dest...); err != nil {
			problem("figures: %v", err)
		}
	}
	q(`SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), 0), coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), 0), coalesce(max(ms), 0)
		FROM (SELECT extract(epoch FROM started_at - created_at) * 1000 AS ms FROM runs WHERE attempt = 1 AND started_at IS NOT NULL) s`,
		&r.DispatchP50, &r.DispatchP99, &r.DispatchMax)
	q(`SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), 0), coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), 0)
		FROM (SELECT extract(epoch FROM completed_at - created_at) * 1000 - duration_ms AS ms FROM runs
		      WHERE attempt = 1 AND status IN ('passed','failed') AND duration_ms IS NOT NULL) s`, &r.OverheadP50, &r.OverheadP99)
	q(`SELECT pg_total_relation_size('runs'), pg_total_relation_size('run_actions')`, &r.RunsBytes, &r.ActionsBytes)
	q(`SELECT coalesce(count(*) / nullif(extract(epoch FROM max(completed_at) - min(started_at)), 0), 0) FROM runs WHERE status IN ('passed','failed')`, &r.RunsPerSecondDone)
	rc := d.redis()
	defer rc.Close()
	r.StreamLength, _ = rc.XLen(ctx, "scale:runs").Result()
	r.DeadLetters, _ = rc.XLen(ctx, "scale:runs:dead").Result()
}

// overlaps is the runs two of whose replays overlapped in time.
func (d *driver) overlaps() []string {
	type span struct {
		p          *proc
		start, end time.Time
	}
	d.mu.Lock()
	bounds := append([]replayB(nil), d.replay...)
	d.mu.Unlock()
	open := map[string]map[*proc]time.Time{}
	spans := map[string][]span{}
	for _, b := range bounds {
		if open[b.run] == nil {
			open[b.run] = map[*proc]time.Time{}
		}
		if b.began {
			open[b.run][b.p] = b.at
			continue
		}
		if s, ok := open[b.run][b.p]; ok {
			spans[b.run] = append(spans[b.run], span{b.p, s, b.at})
			delete(open[b.run], b.p)
		}
	}
	far := time.Now().Add(time.Hour)
	for run, m := range open {
		for p, s := range m {
			end := far // still replaying when the driver stopped: overlaps anything after
			if k := p.killedAt(); !k.IsZero() {
				end = k
			}
			spans[run] = append(spans[run], span{p, s, end})
		}
	}
	var out []string
	for run, ss := range spans {
		sort.Slice(ss, func(i, j int) bool { return ss[i].start.Before(ss[j].start) })
		last := 0 // the span that ends last so far
		for i := 1; i < len(ss); i++ {
			if ss[i].start.Before(ss[last].end) {
				out = append(out, fmt.Sprintf("%s (%s from %s, %s from %s)", run, ss[last].p.name, ss[last].start.Format("15:04:05.000"),
					ss[i].p.name, ss[i].start.Format("15:04:05.000")))
				break
			}
			if ss[i].end.After(ss[last].end) {
				last = i
			}
		}
	}
	sort.Strings(out)
	return out
}

func list(s []string) string {
	sort.Strings(s)
	if len(s) > maxListed {
		return strings.Join(s[:maxListed], ", ") + fmt.Sprintf(" and %d more", len(s)-maxListed)
	}
	return strings.Join(s, ", ")
}
