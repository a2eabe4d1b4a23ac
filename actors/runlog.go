package actors

import "log/slog"

// runLog is the logger of every line about one run. It carries the fields
// of the worker log line (RUNS_API.md, Logging): worker, jobId (the run's
// stream entry) and runId, then attrs; the handler adds level, timestamp
// and message.
func (d *Deps) runLog(runID, jobID string, attrs ...any) *slog.Logger {
	return d.Log.With(append([]any{"worker", d.Worker, "jobId", jobID, "runId", runID}, attrs...)...)
}
