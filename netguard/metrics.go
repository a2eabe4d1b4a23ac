package netguard

import (
	"io"
	"log"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricRequestsBlocked counts requests of runs refused by the URL or
// network policy, by rule (one of the Rule constants).
const MetricRequestsBlocked = "saveaction_requests_blocked_total"

// Metrics are the policy's Prometheus collectors.
type Metrics struct {
	Blocked *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them on reg (which may be
// nil). Every rule starts at zero so that alerts see the series.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{Blocked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRequestsBlocked,
		Help: "Requests of runs refused by the URL or network policy, by rule."}, []string{"rule"})}
	for _, r := range []string{RuleScheme, RuleNetwork, RuleEndpoint, RuleHost, RuleDownload} {
		m.Blocked.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.Blocked)
	}
	return m
}

// Count records one refusal; it accepts a nil receiver so callers need not
// check.
func (m *Metrics) Count(rule string) {
	if m == nil {
		return
	}
	m.Blocked.WithLabelValues(rule).Inc()
}

// discardLog keeps the proxy's http.Server from writing to the process's
// standard error: a page's broken connections are not the worker's news.
func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }
