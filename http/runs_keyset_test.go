package http

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/saveaction/runner/persistence"
)

// TestListRunsKeyset walks a user's runs page by page with nextCursor in
// every order, including the nullable ones and ties of the sort value, and
// checks each walk returns every run once, in the order an OFFSET listing
// gives; and that a cursor of another order, or none at all, is a 400.
func TestListRunsKeyset(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	recID := h.uploadRecording()
	// 23 runs: creation times with ties (g/2), starts and completions with
	// NULLs and ties, every status.
	_, err := testDB().ExecContext(context.Background(), `
		INSERT INTO runs (user_id, recording_id, recording_name, recording_url, status, attempt, started_at, completed_at, created_at, updated_at)
		SELECT ?, ?, 'keyset', 'https://x/',
			(ARRAY['queued','running','passed','failed','cancelled']::run_status[])[1 + g % 5],
			CASE WHEN g % 5 = 0 THEN 0 ELSE 1 END,
			CASE WHEN g % 5 = 0 THEN NULL ELSE timestamp '2026-01-01' + (g / 3) * interval '1 second' END,
			CASE WHEN g % 5 IN (0, 1) THEN NULL ELSE timestamp '2026-01-01' + (g / 4) * interval '1.5 second' END,
			timestamp '2026-01-01' + (g / 2) * interval '1 second' + interval '0.000123 second', now()
		FROM generate_series(1, 23) AS g`, h.user.ID, recID)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(r resp) []string {
		var out []string
		for _, it := range r.list() {
			out = append(out, it.(map[string]any)["id"].(string))
		}
		return out
	}
	for _, order := range []string{"asc", "desc"} {
		for _, sortBy := range persistence.RunSortKeys() {
			base := fmt.Sprintf("/api/v1/runs?sortBy=%s&sortOrder=%s", sortBy, order)
			want := ids(h.do("GET", base+"&limit=100", nil).must(t, 200))
			if len(want) != 23 {
				t.Fatalf("%s: %d runs listed", base, len(want))
			}
			var got []string
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatalf("%s: more pages than runs", base)
				}
				r := h.do("GET", base+"&limit=4"+cursor, nil).must(t, 200)
				got = append(got, ids(r)...)
				pg := r.Body["pagination"].(map[string]any)
				if pg["total"] != float64(23) || pg["totalExact"] != true {
					t.Errorf("%s: pagination %v", base, pg)
				}
				next, _ := pg["nextCursor"].(string)
				if (next != "") != pg["hasNext"].(bool) {
					t.Errorf("%s: hasNext %v with nextCursor %q", base, pg["hasNext"], next)
				}
				if next == "" {
					break
				}
				cursor = "&cursor=" + url.QueryEscape(next)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: pages by cursor\n got %v\nwant %v", base, got, want)
			}
		}
	}
	r := h.do("GET", "/api/v1/runs?limit=2", nil).must(t, 200)
	next := r.Body["pagination"].(map[string]any)["nextCursor"].(string)
	for _, q := range []string{
		"cursor=" + url.QueryEscape(next) + "&sortOrder=asc",
		"cursor=" + url.QueryEscape(next) + "&sortBy=status",
		"cursor=notacursor", "cursor=" + url.QueryEscape("eyJzIjoiY3JlYXRlZEF0In0"), "total=maybe",
	} {
		if got := h.do("GET", "/api/v1/runs?"+q, nil).wantError(t, 400, CodeValidation).problemPaths(); len(got) != 1 {
			t.Errorf("%s: problems at %v", q, got)
		}
	}
	// total=exact counts; the default is exact this small.
	pg := h.do("GET", "/api/v1/runs?total=exact&status=passed", nil).must(t, 200).Body["pagination"].(map[string]any)
	if pg["total"] != float64(5) || pg["totalExact"] != true {
		t.Errorf("exact total of passed runs: %v", pg)
	}
}

// TestCountRunsEstimates checks that past the exact bound the total is the
// planner's estimate, marked inexact, and that total=exact still counts.
func TestCountRunsEstimates(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	recID := h.uploadRecording()
	_, err := testDB().ExecContext(context.Background(), `
		INSERT INTO runs (user_id, recording_id, recording_name, recording_url, status, created_at, updated_at)
		SELECT ?, ?, 'count', 'https://x/', 'passed', now() - g * interval '1 second', now()
		FROM generate_series(1, ?) AS g`, h.user.ID, recID, runTotalExactUpTo+500)
	if err != nil {
		t.Fatal(err)
	}
	pg := h.do("GET", "/api/v1/runs?limit=5", nil).must(t, 200).Body["pagination"].(map[string]any)
	if pg["totalExact"] != false || pg["total"].(float64) <= runTotalExactUpTo || pg["hasNext"] != true {
		t.Errorf("estimated pagination: %v", pg)
	}
	pg = h.do("GET", "/api/v1/runs?limit=5&total=exact", nil).must(t, 200).Body["pagination"].(map[string]any)
	if pg["totalExact"] != true || pg["total"] != float64(runTotalExactUpTo+500) || pg["totalPages"] != float64((runTotalExactUpTo+500)/5) {
		t.Errorf("exact pagination: %v", pg)
	}
}
