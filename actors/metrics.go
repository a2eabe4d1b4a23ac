package actors

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/saveaction/runner/queue"
)

// Metric names, in one place (DESIGN.md, Observability).
const (
	MetricRunsTotal       = "saveaction_runs_total"
	MetricRunDuration     = "saveaction_run_duration_seconds"
	MetricActionDuration  = "saveaction_action_duration_seconds"
	MetricQueueDepth      = "saveaction_queue_depth"
	MetricQueueOldestAge  = "saveaction_queue_oldest_age_seconds"
	MetricRunsActive      = "saveaction_runs_active"
	MetricWorkerSlots     = "saveaction_worker_slots"
	MetricBrowserLaunches = "saveaction_browser_launches_total"
	MetricBrowserCrashes  = "saveaction_browser_crashes_total"
	MetricActorRestarts   = "saveaction_actor_restarts_total"
	MetricLeasesReclaimed = "saveaction_leases_reclaimed_total"
	MetricCancelLatency   = "saveaction_cancel_latency_seconds"
	MetricDeadLetters     = "saveaction_dead_letters_total"
	MetricRunFailures     = "saveaction_run_failures_total"
)

// Failure classes of saveaction_run_failures_total{reason}: a bounded set.
const (
	FailureTest             = "test"              // an action failed: the result of the test
	FailureWorkerLost       = "worker_lost"       // deliveries spent
	FailureBrowserCrash     = "browser_crash"     // crash budget spent
	FailureInvalidRecording = "invalid_recording" // the recording or its options could not be replayed
)

// Metrics are the worker's Prometheus collectors (per node; the queue's are
// QueueMetrics, exported once for the fleet).
type Metrics struct {
	RunsTotal       *prometheus.CounterVec
	RunDuration     prometheus.Histogram
	ActionDuration  *prometheus.HistogramVec
	RunsActive      prometheus.Gauge
	WorkerSlots     *prometheus.GaugeVec
	BrowserLaunches prometheus.Counter
	BrowserCrashes  prometheus.Counter
	ActorRestarts   prometheus.Counter
	LeasesReclaimed prometheus.Counter
	CancelLatency   prometheus.Histogram
	DeadLetters     prometheus.Counter
	RunFailures     *prometheus.CounterVec
}

// NewMetrics creates the worker metrics and registers them on reg (which may be nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		RunsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRunsTotal,
			Help: "Runs finished by this worker, by final status."}, []string{"status"}),
		RunDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricRunDuration,
			Help: "Wall time of finished runs.", Buckets: prometheus.ExponentialBuckets(0.1, 2, 14)}),
		ActionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: MetricActionDuration,
			Help: "Time per executed action, by action type.", Buckets: prometheus.ExponentialBuckets(0.002, 2.5, 12)}, []string{"type"}),
		RunsActive: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricRunsActive,
			Help: "Runs executing on this worker now."}),
		WorkerSlots: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricWorkerSlots,
			Help: "Run slots of this worker, by state (busy, free)."}, []string{"state"}),
		BrowserLaunches: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricBrowserLaunches,
			Help: "Chromium processes started."}),
		BrowserCrashes: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricBrowserCrashes,
			Help: "Chromium processes or contexts that died under a run."}),
		ActorRestarts: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricActorRestarts,
			Help: "Run actors restarted by their supervisor."}),
		LeasesReclaimed: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricLeasesReclaimed,
			Help: "Stream entries taken over from a worker that stopped renewing."}),
		CancelLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricCancelLatency,
			Help: "Time from a cancel request to the run being cancelled.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}),
		DeadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricDeadLetters,
			Help: "Runs given up as worker lost and moved to the dead-letter stream."}),
		RunFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRunFailures,
			Help: "Failed runs by reason class (test, worker_lost, browser_crash, invalid_recording)."}, []string{"reason"}),
	}
	for _, r := range []string{FailureTest, FailureWorkerLost, FailureBrowserCrash, FailureInvalidRecording} {
		m.RunFailures.WithLabelValues(r) // every class exported from the start, at 0
	}
	for _, s := range []string{"passed", "failed", "cancelled"} {
		m.RunsTotal.WithLabelValues(s)
	}
	if reg != nil {
		reg.MustRegister(m.RunsTotal, m.RunDuration, m.ActionDuration, m.RunsActive,
			m.WorkerSlots, m.BrowserLaunches, m.BrowserCrashes, m.ActorRestarts, m.LeasesReclaimed, m.CancelLatency,
			m.DeadLetters, m.RunFailures)
	}
	return m
}

// queueScrapeTimeout bounds the Redis reads of one scrape of QueueMetrics.
const queueScrapeTimeout = 2 * time.Second

// QueueMetrics exports saveaction_queue_depth and
// saveaction_queue_oldest_age_seconds once for the whole fleet: only the
// node for which Holder answers true exports them, and it reads the stream
// at scrape time. A node that loses the role exports nothing from its next
// scrape on (the series goes absent, Prometheus marks it stale) rather than
// a value frozen when it stopped looking. A Redis that does not answer also
// leaves the series absent: no value is better than an old one.
type QueueMetrics struct {
	queue  *queue.Queue
	holder func(context.Context) bool
	log    *slog.Logger
	depth  *prometheus.Desc
	age    *prometheus.Desc
}

// NewQueueMetrics is the fleet's queue gauges, exported while holder(ctx)
// is true: the maintenance singleton in a cluster, the reconciler's lock
// holder without one.
func NewQueueMetrics(q *queue.Queue, holder func(context.Context) bool, log *slog.Logger) *QueueMetrics {
	return &QueueMetrics{queue: q, holder: holder, log: log,
		depth: prometheus.NewDesc(MetricQueueDepth,
			"Entries in the dispatch stream (waiting or in flight), exported by one node of the fleet.", nil, nil),
		age: prometheus.NewDesc(MetricQueueOldestAge,
			"Age of the oldest entry in the dispatch stream, exported by one node of the fleet.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *QueueMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.depth
	ch <- m.age
}

// Collect implements prometheus.Collector.
func (m *QueueMetrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueScrapeTimeout)
	defer cancel()
	if !m.holder(ctx) {
		return
	}
	st, err := m.queue.Stats(ctx)
	if err != nil {
		m.log.Debug("queue metrics not exported: stream unreadable", "error", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(m.depth, prometheus.GaugeValue, float64(st.Depth))
	ch <- prometheus.MustNewConstMetric(m.age, prometheus.GaugeValue, st.OldestAge.Seconds())
}
