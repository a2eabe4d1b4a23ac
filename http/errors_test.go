package http

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/saveaction/runner/persistence"
)

func TestErrorShapeEverywhere(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.app.Get("/test/panic", func(c *fiber.Ctx) error { panic("boom: secret detail") })
	tests := []struct {
		name, method, path string
		body               any
		opts               []reqOpt
		status             int
		code               string
	}{
		{"unknown route", "GET", "/api/v1/nope", nil, nil, 404, CodeNotFound},
		{"unknown route outside the API", "GET", "/nope", nil, nil, 404, CodeNotFound},
		{"unknown file of the run page", "GET", "/ui/nope.js", nil, nil, 404, CodeNotFound},
		{"method not allowed", "PATCH", "/api/v1/runs", nil, nil, 405, CodeMethodNotAllowed},
		{"not JSON", "POST", "/api/v1/runs", "recordingId=x", []reqOpt{withHeader("Content-Type", "application/x-www-form-urlencoded")}, 415, CodeUnsupportedMedia},
		{"no content type", "POST", "/api/v1/runs", `{}`, []reqOpt{withHeader("Content-Type", "")}, 415, CodeUnsupportedMedia},
		{"bad JSON", "POST", "/api/v1/runs", `{"recordingId":`, nil, 400, CodeValidation},
		{"JSON but not an object", "POST", "/api/v1/runs", `[1,2]`, nil, 400, CodeValidation},
		{"trailing data", "POST", "/api/v1/runs", `{} {}`, nil, 400, CodeValidation},
		{"empty body", "POST", "/api/v1/runs", nil, nil, 400, CodeValidation},
		{"panic", "GET", "/test/panic", nil, nil, 500, CodeInternal},
		{"bad uuid in path", "GET", "/api/v1/runs/not-a-uuid", nil, nil, 400, CodeValidation},
		{"bad uuid recording", "GET", "/api/v1/recordings/123", nil, nil, 400, CodeValidation},
		{"bad uuid token", "POST", "/api/v1/tokens/x/revoke", nil, nil, 400, CodeValidation},
		{"missing run", "GET", "/api/v1/runs/" + uuid.NewString(), nil, nil, 404, CodeRunNotFound},
		{"missing recording", "GET", "/api/v1/recordings/" + uuid.NewString(), nil, nil, 404, CodeRecordingNotFound},
		{"missing token", "DELETE", "/api/v1/tokens/" + uuid.NewString(), nil, nil, 404, CodeTokenNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(tc.method, tc.path, tc.body, tc.opts...)
			r.wantError(t, tc.status, tc.code)
			if strings.Contains(string(r.Raw), "secret detail") || strings.Contains(string(r.Raw), "goroutine") {
				t.Fatalf("internals leaked: %s", r.Raw)
			}
		})
	}
	if logs := h.logs.String(); !strings.Contains(logs, "boom: secret detail") || !strings.Contains(logs, "stack=") {
		t.Fatalf("panic not logged with its stack:\n%s", logs)
	}
}

func TestValidationProblemPaths(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.do("GET", "/api/v1/runs/xyz", nil).wantError(t, 400, CodeValidation)
	if p := r.problemPaths(); len(p) != 1 || p[0] != "id" {
		t.Fatalf("paths %v", p)
	}
	r = h.do("POST", "/api/v1/runs", `{"recordingId":`).wantError(t, 400, CodeValidation)
	if p := r.problemPaths(); len(p) != 1 || p[0] != "$" {
		t.Fatalf("paths %v", p)
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.do("GET", "/api/health", nil, withHeader(HeaderRequestID, "abc-123"))
	if got := r.Header.Get(HeaderRequestID); got != "abc-123" {
		t.Fatalf("echo: %q", got)
	}
	r = h.do("GET", "/api/health", nil)
	if _, err := uuid.Parse(r.Header.Get(HeaderRequestID)); err != nil {
		t.Fatalf("generated id %q: %v", r.Header.Get(HeaderRequestID), err)
	}
	// An id that could forge log lines or headers is replaced.
	r = h.do("GET", "/api/v1/nope", nil, withHeader(HeaderRequestID, "bad id\" x"))
	if got := r.Header.Get(HeaderRequestID); got == "bad id\" x" || got == "" {
		t.Fatalf("unsafe id kept: %q", got)
	}
	checkErrorShape(t, r)
}

// TestBodyTooLarge goes through a real listener: the limit is enforced by
// fasthttp before any handler runs, and still answers in the error shape
// with the request id.
func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	base := h.serve()
	// The headers alone announce too much: a client streaming the body
	// would be cut off, so only the headers are sent.
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Authorization: Bearer %s\r\nX-Request-ID: big-1\r\nContent-Length: %d\r\n\r\n", h.token, BodyLimit+1)
	res, err := nethttp.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	r := resp{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if err := json.Unmarshal(raw, &r.Body); err != nil {
		t.Fatalf("413 body is not JSON: %q", raw)
	}
	r.wantError(t, 413, CodePayloadTooLarge)
	if r.Header.Get(HeaderRequestID) != "big-1" {
		t.Fatalf("413 without the request id: %v", r.Header)
	}
	// Exactly at the limit the body is read (and found not to be a run).
	r = h.doNet(base, "POST", "/api/v1/runs", bytes.Repeat([]byte(" "), BodyLimit))
	r.wantError(t, 400, CodeValidation)
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	well := persistence.TokenPrefix + strings.Repeat("ab", 32)

	revoked := newToken(t, testDB(), h.user.ID, persistence.AllScopes)
	tok, err := persistence.AuthenticateToken(ctx, testDB(), revoked, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := persistence.RevokeToken(ctx, testDB(), h.user.ID, tok.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(time.Hour)
	expiring, _, err := persistence.CreateToken(ctx, testDB(), h.user.ID, "short", persistence.AllScopes, &soon)
	if err != nil {
		t.Fatal(err)
	}
	hLater := newHarness(t, func(c *Config) { c.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } })

	gone, goneTok := newUser(t, testDB(), persistence.AllScopes)
	if _, err := testDB().NewUpdate().Model((*persistence.User)(nil)).Set("deleted_at = now()").Where("id = ?", gone.ID).Exec(ctx); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		h    *harness
		opt  reqOpt
	}{
		{"no header", h, noAuth()},
		{"not bearer", h, withHeader("Authorization", "Basic dXNlcjpwYXNz")},
		{"bearer without token", h, withHeader("Authorization", "Bearer")},
		{"malformed token", h, withToken("sa_live_xyz")},
		{"uppercase hex", h, withToken(strings.ToUpper(well))},
		{"unknown token", h, withToken(well)},
		{"revoked", h, withToken(revoked)},
		{"expired", hLater, withToken(expiring)},
		{"deleted user", h, withToken(goneTok)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.h.do("GET", "/api/v1/runs", nil, tc.opt).wantError(t, 401, CodeUnauthorized)
			if r.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("no WWW-Authenticate")
			}
		})
	}
	// The expiring token works before it expires.
	h.do("GET", "/api/v1/runs", nil, withToken(expiring)).must(t, 200)
}

func TestScopes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	recID := h.uploadRecording()
	runID := h.createRun(recID, nil)["id"].(string)
	id := uuid.NewString()
	// Each route with the scope it needs.
	routes := []struct {
		method, path, scope string
		body                any
	}{
		{"GET", "/api/v1/recordings", persistence.ScopeRecordingsRead, nil},
		{"GET", "/api/v1/recordings/" + recID, persistence.ScopeRecordingsRead, nil},
		{"GET", "/api/v1/recordings/" + recID + "/export", persistence.ScopeRecordingsRead, nil},
		{"POST", "/api/v1/recordings", persistence.ScopeRecordingsWrite, `{}`},
		{"PUT", "/api/v1/recordings/" + id, persistence.ScopeRecordingsWrite, `{"name":"x"}`},
		{"DELETE", "/api/v1/recordings/" + id, persistence.ScopeRecordingsWrite, nil},
		{"GET", "/api/v1/runs", persistence.ScopeRunsRead, nil},
		{"GET", "/api/v1/runs/" + runID, persistence.ScopeRunsRead, nil},
		{"GET", "/api/v1/runs/" + runID + "/actions", persistence.ScopeRunsRead, nil},
		{"POST", "/api/v1/runs", persistence.ScopeRunsExecute, `{}`},
		{"POST", "/api/v1/runs/" + id + "/cancel", persistence.ScopeRunsExecute, nil},
		{"POST", "/api/v1/runs/" + id + "/retry", persistence.ScopeRunsExecute, nil},
		{"DELETE", "/api/v1/runs/" + id, persistence.ScopeRunsExecute, nil},
		{"GET", "/api/v1/tokens", persistence.ScopeTokensManage, nil},
		{"POST", "/api/v1/tokens", persistence.ScopeTokensManage, `{}`},
		{"POST", "/api/v1/tokens/" + id + "/revoke", persistence.ScopeTokensManage, nil},
		{"DELETE", "/api/v1/tokens/" + id, persistence.ScopeTokensManage, nil},
	}
	tokens := map[string]string{}
	for _, s := range persistence.AllScopes {
		tokens[s] = newToken(t, testDB(), h.user.ID, []string{s})
	}
	for _, rt := range routes {
		for _, s := range persistence.AllScopes {
			r := h.do(rt.method, rt.path, rt.body, withToken(tokens[s]))
			if s == rt.scope {
				if r.Status == 401 || r.Status == 403 {
					t.Errorf("%s %s with %s: %d %s", rt.method, rt.path, s, r.Status, r.Raw)
				}
				continue
			}
			if r.Status != 403 || r.errCode() != CodeInsufficientScope {
				t.Errorf("%s %s with %s: %d %s, want 403", rt.method, rt.path, s, r.Status, r.Raw)
				continue
			}
			checkErrorShape(t, r)
			if e := r.Body["error"].(map[string]any); !strings.Contains(e["message"].(string), rt.scope) {
				t.Errorf("message does not name %s: %v", rt.scope, e["message"])
			}
		}
	}
}
