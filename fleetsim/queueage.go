package fleetsim

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math"
	nethttp "net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ageBound is how far the exported queue age may stray from the truth
// before the driver calls it a lie: a sample's reads are not at one
// instant (a scrape and a query, each tens of milliseconds, more on a
// loaded host), and the truth is read to the millisecond of an entry id.
const ageBound = 5 * time.Second

// ageSample is one moment of the queue gauges as the exporting node showed
// them, beside the truth read from PostgreSQL right after.
type ageSample struct {
	at            time.Time
	node          string  // the worker that exported them
	depth, age    float64 // saveaction_queue_depth, saveaction_queue_oldest_age_seconds
	live, queued  int     // runs queued or running, queued
	liveAge       float64 // age of the entry of the oldest live run (what the stream should hold), after the scrape
	liveAgeBefore float64 // the same, before the scrape
	liveBefore    int     // runs queued or running before the scrape
	queuedWaiting float64 // how long the oldest queued run has waited since it was created
	skew          float64 // seconds between the first truth's start and the second's end
}

// ageSampler samples the fleet's queue gauges every interval until stopped.
type ageSampler struct {
	d       *driver
	mu      sync.Mutex
	samples []ageSample
	misses  int // scrapes that found no exporting node or no gauge
	stop    chan struct{}
	done    chan struct{}
}

func (d *driver) sampleQueueAge(interval time.Duration) *ageSampler {
	s := &ageSampler{d: d, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		db, err := d.db(context.Background())
		if err != nil {
			return
		}
		defer db.Close()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s.once(db)
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *ageSampler) finish() []ageSample {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// once takes one sample: the node holding the reconciler's lock (the one
// that exports the gauges without a cluster), its /metrics, then the truth.
func (s *ageSampler) once(db *sql.DB) {
	d := s.d
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t0 := time.Now()
	rc := d.redis()
	holder, err := rc.Get(ctx, "scale:reconciler:lock").Result()
	rc.Close()
	miss := func() { s.mu.Lock(); s.misses++; s.mu.Unlock() }
	if err != nil {
		miss()
		return
	}
	d.mu.Lock()
	port := d.metricsPorts[holder]
	d.mu.Unlock()
	if port == 0 {
		miss()
		return
	}
	// The truth is read before and after the scrape, which lies between.
	var smp ageSample
	if err := truth(ctx, db, &smp); err != nil {
		miss()
		return
	}
	smp.liveAgeBefore, smp.liveBefore = smp.liveAge, smp.live
	g, err := d.scrapeGauges(ctx, port)
	if err != nil {
		miss()
		return
	}
	depth, okD := g["saveaction_queue_depth"]
	age, okA := g["saveaction_queue_oldest_age_seconds"]
	if !okD || !okA {
		miss()
		return
	}
	if err := truth(ctx, db, &smp); err != nil {
		miss()
		return
	}
	smp.at, smp.node, smp.depth, smp.age = t0, holder, depth, age
	smp.skew = time.Since(t0).Seconds()
	s.mu.Lock()
	s.samples = append(s.samples, smp)
	s.mu.Unlock()
}

// truth reads the runs queued or running from PostgreSQL, the age of the
// oldest one's entry (the milliseconds of its job_id) and how long the
// oldest queued run has waited.
func truth(ctx context.Context, db *sql.DB, smp *ageSample) error {
	return db.QueryRowContext(ctx, `SELECT
		count(*) FILTER (WHERE status IN ('queued','running')),
		count(*) FILTER (WHERE status = 'queued'),
		COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - to_timestamp(min(split_part(job_id, '-', 1)::bigint)
			FILTER (WHERE status IN ('queued','running') AND job_id <> '') / 1000.0)), 0),
		COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at) FILTER (WHERE status = 'queued')), 0)
		FROM runs WHERE status IN ('queued','running')`).Scan(&smp.live, &smp.queued, &smp.liveAge, &smp.queuedWaiting)
}

// ageErr is how far the exported age lies outside what the truth allowed
// while it was read: between the oldest live entry's age before and after
// the scrape (the oldest live run may finish meanwhile: at the end of a
// drain that is a fall to 0), plus the time the sample took.
func (s ageSample) ageErr() float64 {
	lo, hi := math.Min(s.liveAgeBefore, s.liveAge), math.Max(s.liveAgeBefore, s.liveAge)+s.skew
	switch {
	case s.age < lo:
		return lo - s.age
	case s.age > hi:
		return s.age - hi
	}
	return 0
}

// scrapeGauges reads the unlabelled samples of a node's /metrics.
func (d *driver) scrapeGauges(ctx context.Context, port int) (map[string]float64, error) {
	req, err := nethttp.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://127.0.0.1:%d/metrics", port), nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// QueueAge is how the exported queue gauges compared with the truth.
type QueueAge struct {
	Samples, Misses int
	// AgeErrMax is the largest |exported age − age of the oldest live
	// run's entry| in seconds, AgeErrMean its mean; AgeOverQueuedMax the
	// largest exported age − the oldest queued run's wait (what an
	// operator reads the gauge as; in-flight entries make it larger).
	AgeErrMax, AgeErrMean, AgeOverQueuedMax float64
	// DepthErrMax is the largest distance of the exported depth from the
	// runs queued or running before and after it was read.
	DepthErrMax float64
	// SkewMax is the longest a sample took (scrape to truth), in seconds.
	SkewMax float64
	// Beyond counts the samples whose age error passed the bound plus
	// their own duration.
	Beyond int
	// Worst is the sample of AgeErrMax.
	Worst string
}

func summarize(samples []ageSample, misses int) *QueueAge {
	q := &QueueAge{Samples: len(samples), Misses: misses}
	var sum float64
	for _, s := range samples {
		e := s.ageErr()
		sum += e
		if e >= q.AgeErrMax {
			q.AgeErrMax = e
			q.Worst = fmt.Sprintf("at %s from %s: age %.1fs, oldest live entry %.1fs before and %.1fs after (%.1fs apart), oldest queued run waited %.1fs; depth %.0f, runs queued %d, live %d",
				s.at.UTC().Format("15:04:05"), s.node, s.age, s.liveAgeBefore, s.liveAge, s.skew, s.queuedWaiting, s.depth, s.queued, s.live)
		}
		q.AgeOverQueuedMax = math.Max(q.AgeOverQueuedMax, s.age-s.queuedWaiting)
		lo, hi := float64(min(s.liveBefore, s.live)), float64(max(s.liveBefore, s.live))
		q.DepthErrMax = math.Max(q.DepthErrMax, math.Max(0, math.Max(lo-s.depth, s.depth-hi)))
		q.SkewMax = math.Max(q.SkewMax, s.skew)
		if e > ageBound.Seconds() {
			q.Beyond++
		}
	}
	if len(samples) > 0 {
		q.AgeErrMean = sum / float64(len(samples))
	}
	return q
}

// judge adds a problem when the gauge lied by more than the bound (plus
// the sample's own duration) or never could be read. Under churn it only
// reports: a Redis restart loses the stream, and the gauges are rightly
// blind to the lost entries until the reconciler re-creates them.
func (q *QueueAge) judge(r *Report, churn bool) {
	r.QueueAge = q
	if churn {
		return
	}
	if q.Samples == 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("queue age: no sample of the exported gauges (%d misses)", q.Misses))
		return
	}
	if q.Beyond > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("queue age: in %d of %d samples the exported age strayed from the truth by more than %s plus the sample's duration; worst %.1fs: %s",
			q.Beyond, q.Samples, ageBound, q.AgeErrMax, q.Worst))
	}
}

func (q *QueueAge) write(w io.Writer) {
	fmt.Fprintf(w, "queue gauges vs PostgreSQL (%d samples, %d misses): age error max %.2fs mean %.2fs (vs the oldest live run's entry; %d samples beyond %s + their duration), age above the oldest queued run's wait at most %.2fs, depth error max %.0f, a sample took at most %.2fs\n",
		q.Samples, q.Misses, q.AgeErrMax, q.AgeErrMean, q.Beyond, ageBound, q.AgeOverQueuedMax, q.DepthErrMax, q.SkewMax)
	if q.Worst != "" {
		fmt.Fprintf(w, "  worst: %s\n", q.Worst)
	}
}
