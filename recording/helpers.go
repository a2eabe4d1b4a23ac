package recording

import "math"

// EstimatedDurationMs is how long the recording took: from the earliest
// action timestamp to the latest timestamp or completedAt, in whole
// milliseconds, never negative. The span is the same before and after
// Normalize, which only shifts every timestamp by one amount. A recording
// without actions lasts 0.
func (r *Recording) EstimatedDurationMs() int64 {
	if r == nil || len(r.Actions) == 0 {
		return 0
	}
	start, end := r.Actions[0].Timestamp, r.Actions[0].Timestamp
	for _, a := range r.Actions {
		start = min(start, a.Timestamp)
		end = max(end, a.Timestamp)
		if a.CompletedAt != nil {
			end = max(end, *a.CompletedAt)
		}
	}
	d := math.Round(end - start)
	switch {
	case !(d > 0): // also NaN
		return 0
	case d >= math.MaxInt64:
		return math.MaxInt64
	}
	return int64(d)
}
