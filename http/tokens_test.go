package http

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/saveaction/runner/persistence"
)

func TestTokens(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	exp := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	c := h.do("POST", "/api/v1/tokens", map[string]any{"name": "ci", "scopes": []string{"runs:read", "runs:execute"}, "expiresAt": exp}).must(t, 201).data()
	plain, _ := c["token"].(string)
	if !persistence.WellFormedToken(plain) || c["tokenPrefix"] != plain[:16] || c["tokenSuffix"] != plain[len(plain)-4:] ||
		fmt.Sprint(c["scopes"]) != "[runs:read runs:execute]" || c["name"] != "ci" || c["expiresAt"] == nil || c["createdAt"] == nil {
		t.Fatalf("created: %v", c)
	}
	// The new token works, within its scopes.
	h.do("GET", "/api/v1/runs", nil, withToken(plain)).must(t, 200)
	h.do("GET", "/api/v1/recordings", nil, withToken(plain)).wantError(t, 403, CodeInsufficientScope)

	// Default scopes are the caller's own; a token cannot grant more than it has.
	d := h.do("POST", "/api/v1/tokens", map[string]any{"name": "all"}).must(t, 201).data()
	if fmt.Sprint(d["scopes"]) != fmt.Sprint(persistence.AllScopes) {
		t.Fatalf("default scopes %v", d["scopes"])
	}
	manager := newToken(t, testDB(), h.user.ID, []string{persistence.ScopeTokensManage})
	r := h.do("POST", "/api/v1/tokens", map[string]any{"name": "up", "scopes": []string{"runs:execute"}}, withToken(manager)).
		wantError(t, 403, CodeInsufficientScope)
	if !strings.Contains(string(r.Raw), "runs:execute") {
		t.Fatalf("message: %s", r.Raw)
	}

	r = h.do("POST", "/api/v1/tokens", map[string]any{"name": "", "scopes": []string{"root"}, "expiresAt": "tomorrow", "x": 1}).wantError(t, 400, CodeValidation)
	if got := fmt.Sprint(r.problemPaths()); got != "[x name scopes[0] expiresAt]" {
		t.Fatalf("paths %s", got)
	}
	h.do("POST", "/api/v1/tokens", map[string]any{"name": "old", "expiresAt": "2020-01-01T00:00:00Z"}).wantError(t, 400, CodeValidation)
	h.do("POST", "/api/v1/tokens", map[string]any{"name": "none", "scopes": []string{}}).wantError(t, 400, CodeValidation)

	l := h.do("GET", "/api/v1/tokens", nil).must(t, 200)
	if len(l.list()) != 4 || l.Body["pagination"].(map[string]any)["total"] != float64(4) { // harness, ci, all, manager
		t.Fatalf("list: %s", l.Raw)
	}
	for _, it := range l.list() {
		m := it.(map[string]any)
		if _, has := m["token"]; has {
			t.Fatalf("list shows a secret: %v", m)
		}
	}
	if strings.Contains(string(l.Raw), plain) {
		t.Fatal("secret in list")
	}

	id := c["id"].(string)
	rv := h.do("POST", "/api/v1/tokens/"+id+"/revoke", nil).must(t, 200).data()
	if rv["revokedAt"] == nil {
		t.Fatalf("revoke: %v", rv)
	}
	h.do("GET", "/api/v1/runs", nil, withToken(plain)).wantError(t, 401, CodeUnauthorized)
	// Revoking twice keeps the first time.
	if again := h.do("POST", "/api/v1/tokens/"+id+"/revoke", nil).must(t, 200).data(); again["revokedAt"] != rv["revokedAt"] {
		t.Fatalf("revokedAt moved")
	}
	h.do("DELETE", "/api/v1/tokens/"+id, nil).must(t, 200)
	h.do("DELETE", "/api/v1/tokens/"+id, nil).wantError(t, 404, CodeTokenNotFound)
	h.do("POST", "/api/v1/tokens/"+id+"/revoke", nil).wantError(t, 404, CodeTokenNotFound)

	// Another user's token is not found, and keeps working.
	other := newHarness(t)
	oc := other.do("POST", "/api/v1/tokens", map[string]any{"name": "theirs"}).must(t, 201).data()
	h.do("POST", "/api/v1/tokens/"+oc["id"].(string)+"/revoke", nil).wantError(t, 404, CodeTokenNotFound)
	h.do("DELETE", "/api/v1/tokens/"+oc["id"].(string), nil).wantError(t, 404, CodeTokenNotFound)
	other.do("GET", "/api/v1/runs", nil, withToken(oc["token"].(string))).must(t, 200)
}
