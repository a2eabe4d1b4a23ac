package http

import (
	"testing"
)

// TestEndToEndSkeleton walks the path the rest of the system relies on:
// upload a recording, queue a run, read it and its actions back, and find
// its entry on the dispatch stream.
func TestEndToEndSkeleton(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	recID := h.uploadRecording()
	run := h.createRun(recID, map[string]any{"variables": map[string]any{"LOGIN_PASSWORD": "s3cret"}})
	if run["status"] != "queued" || run["recordingId"] != recID || run["browser"] != "chromium" || run["headless"] != true {
		t.Fatalf("created run: %v", run)
	}
	id := run["id"].(string)
	got := h.do("GET", "/api/v1/runs/"+id, nil).must(t, 200).data()
	if got["actionsTotal"] != float64(5) || got["recordingName"] != "Log in and open the dashboard" {
		t.Fatalf("run: %v", got)
	}
	acts := h.do("GET", "/api/v1/runs/"+id+"/actions", nil).must(t, 200).list()
	if len(acts) != 5 {
		t.Fatalf("actions: %v", acts)
	}
	for i, a := range acts {
		m := a.(map[string]any)
		if m["actionIndex"] != float64(i) || m["status"] != "pending" {
			t.Fatalf("action %d: %v", i, m)
		}
	}
	if first := acts[0].(map[string]any); first["actionId"] != "act_001" {
		t.Fatalf("actions not in replay order: %v", acts)
	}
	n, err := h.rdb.XLen(t.Context(), h.queue.Stream()).Result()
	if err != nil || n != 1 {
		t.Fatalf("stream length %d, %v", n, err)
	}
}
