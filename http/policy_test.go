package http

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// A recording that would open the worker's own files, or the browser's
// internals, is refused at upload (POST and PUT) with the path of the
// field; the same recording on http pages is accepted (issue 15).
func TestUploadRefusesNonWebURLs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	withURLs := func(id, start, actionURL, to string) []byte {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(fixtureWithID(t, id), &m); err != nil {
			t.Fatal(err)
		}
		m["url"] = start
		acts := m["actions"].([]any)
		acts[1].(map[string]any)["url"] = actionURL
		nav := map[string]any{"id": "act_nav", "type": "navigation", "timestamp": 9000, "url": "https://app.example.com/a", "to": to}
		m["actions"] = append(acts[:3], nav)
		b, _ := json.Marshal(m)
		return b
	}
	tests := []struct {
		name, start, actionURL, to string
		paths                      []string
	}{
		{"host file as start page", "file:///etc/passwd", "https://app.example.com/a", "https://app.example.com/b", []string{"url"}},
		{"browser internals in an action", "https://app.example.com/", "chrome://settings", "view-source:https://app.example.com/", []string{"actions[1].url", "actions[3].to"}},
		{"mixed case", "FiLe:///etc/shadow", "https://app.example.com/a", "devtools://devtools/bundled/inspector.html", []string{"url", "actions[3].to"}},
		{"javascript navigation", "https://app.example.com/", "https://app.example.com/a", "javascript:alert(1)", []string{"actions[3].to"}},
	}
	for _, tt := range tests {
		body := withURLs("rec_"+strings.ReplaceAll(tt.name, " ", "_"), tt.start, tt.actionURL, tt.to)
		r := h.do("POST", "/api/v1/recordings", body).wantError(t, 400, CodeValidation)
		if got := r.problemPaths(); !slices.Equal(got, tt.paths) {
			t.Errorf("%s: problem paths %v, want %v (%s)", tt.name, got, tt.paths, r.Raw)
		}
		if !strings.Contains(string(r.Raw), "only http and https") {
			t.Errorf("%s: message does not say what is allowed: %s", tt.name, r.Raw)
		}
	}
	// Control: the same shape on web pages is stored, and PUT applies the
	// same rule under data.
	ok := withURLs("rec_ok", "https://app.example.com/", "https://app.example.com/a", "/relative/next")
	id := h.do("POST", "/api/v1/recordings", ok).must(t, 201).data()["id"].(string)
	bad := withURLs("rec_ok", "file:///etc/passwd", "https://app.example.com/a", "/x")
	r := h.do("PUT", "/api/v1/recordings/"+id, `{"data":`+string(bad)+`}`).wantError(t, 400, CodeValidation)
	if got := r.problemPaths(); !slices.Equal(got, []string{"data.url"}) {
		t.Errorf("PUT problem paths %v, want [data.url]", got)
	}
}
