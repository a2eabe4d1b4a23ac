package http

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"mime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/saveaction/runner/persistence"
)

// Keys of values kept in a request's Locals.
type localKey int

const (
	requestIDKey localKey = iota
	routeKey
	principalKey
)

// HeaderRequestID is echoed when valid, generated otherwise, on every response.
const HeaderRequestID = "X-Request-ID"

// maxRequestIDLen bounds a client-supplied request id.
const maxRequestIDLen = 128

// unmatchedRoute labels requests that matched no route, so that unknown
// paths cannot grow the metrics without bound.
const unmatchedRoute = "unmatched"

var errPanic = errors.New("handler panicked")

// requestID returns the request's id, taking it from X-Request-ID or making
// one the first time it is asked, and sets the response header. It is the
// one request-id mechanism: the middleware chain and Fiber's own error path
// both go through it.
func (s *server) requestID(c *fiber.Ctx) string {
	if rid, ok := c.Locals(requestIDKey).(string); ok && rid != "" {
		return rid
	}
	rid := c.Get(HeaderRequestID)
	if !validRequestID(rid) {
		rid = uuid.NewString()
	}
	c.Locals(requestIDKey, rid)
	c.Set(HeaderRequestID, rid)
	return rid
}

func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("-_.:/+=", b) >= 0) {
			return false
		}
	}
	return true
}

// observe wraps every request: request id, a deadline for its work, panic
// recovery, the error envelope, metrics and the access log. It looks only
// at the status code of the response, never its body, so streamed
// responses pass through untouched. The request context (c.UserContext)
// ends when the handler returns: a streaming handler (SSE) must not use it
// inside its body-stream writer, which runs later.
func (s *server) observe(c *fiber.Ctx) error {
	start := time.Now()
	rid := s.requestID(c)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	c.SetUserContext(ctx)

	if err := s.nextRecovered(c, rid); err != nil {
		s.writeError(c, err)
	}
	route, _ := c.Locals(routeKey).(string)
	if route == "" {
		route = unmatchedRoute
	}
	status := c.Response().StatusCode()
	elapsed := time.Since(start)
	s.metrics.observe(c.Method(), route, status, elapsed)

	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelWarn
	case strings.HasPrefix(route, "/api/health") || route == "/metrics":
		level = slog.LevelDebug
	}
	if s.log.Enabled(ctx, level) {
		s.log.LogAttrs(ctx, level, "request",
			slog.String("requestId", rid),
			slog.String("method", c.Method()),
			slog.String("route", route),
			slog.String("path", c.Path()),
			slog.Int("status", status),
			slog.Float64("durationMs", float64(elapsed.Microseconds())/1000),
			slog.String("ip", c.IP()),
		)
	}
	return nil
}

func (s *server) nextRecovered(c *fiber.Ctx, rid string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in handler", "requestId", rid, "method", c.Method(), "path", c.Path(),
				"panic", r, "stack", string(debug.Stack()))
			err = errPanic
		}
	}()
	return c.Next()
}

// open is the first handler of an unauthenticated route: it names the
// route for metrics and logs.
func (s *server) open(c *fiber.Ctx) error {
	c.Locals(routeKey, c.Route().Path)
	return c.Next()
}

// principal is the authenticated caller: a token of a user.
type principal struct {
	UserID  uuid.UUID
	TokenID uuid.UUID
	Scopes  []string
}

func principalOf(c *fiber.Ctx) *principal {
	p, _ := c.Locals(principalKey).(*principal)
	return p
}

// guard is the first handler of an authenticated route: it names the route,
// authenticates the bearer token, applies the token's rate limit, checks
// that the token has scope, and that a body, if any, is JSON. In that
// order: 401, 429, 403, 415.
func (s *server) guard(scope string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Locals(routeKey, c.Route().Path)
		p, err := s.authenticate(c)
		if err != nil {
			return err
		}
		c.Locals(principalKey, p)
		if err := s.rateLimitToken(c, p); err != nil {
			return err
		}
		if !slices.Contains(p.Scopes, scope) {
			return &apiError{
				Status: fiber.StatusForbidden, Code: CodeInsufficientScope,
				Message: "this token lacks the scope " + scope,
				Details: map[string]string{"requiredScope": scope},
			}
		}
		if err := checkJSONBody(c); err != nil {
			return err
		}
		return c.Next()
	}
}

func errUnauthorized(msg string) *apiError {
	e := newAPIError(fiber.StatusUnauthorized, CodeUnauthorized, "%s", msg)
	e.headers = map[string]string{fiber.HeaderWWWAuthenticate: `Bearer realm="saveaction"`}
	return e
}

// authenticate reads `Authorization: Bearer sa_live_...` and finds the token.
func (s *server) authenticate(c *fiber.Ctx) (*principal, error) {
	h := c.Get(fiber.HeaderAuthorization)
	if h == "" {
		return nil, errUnauthorized("missing bearer token (Authorization: Bearer sa_live_...)")
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, errUnauthorized("malformed Authorization header: expected Bearer <token>")
	}
	tok = strings.TrimSpace(tok)
	if !persistence.WellFormedToken(tok) {
		return nil, errUnauthorized("malformed token: expected sa_live_ followed by 64 hex digits")
	}
	var key [sha256.Size]byte
	var gen uint64
	now := s.now()
	if s.tokens != nil {
		key = sha256.Sum256([]byte(tok))
		var p *principal
		if p, gen = s.tokens.get(key, now); p != nil {
			return p, nil
		}
	}
	t, err := persistence.AuthenticateToken(c.UserContext(), s.db, tok, now)
	if errors.Is(err, persistence.ErrTokenInvalid) {
		return nil, errUnauthorized("unknown, revoked or expired token")
	}
	if err != nil {
		return nil, err
	}
	p := &principal{UserID: t.UserID, TokenID: t.ID, Scopes: t.Scopes}
	if s.tokens != nil {
		s.tokens.put(key, p, t.ExpiresAt, gen)
	}
	return p, nil
}

// checkJSONBody answers 415 to a request whose non-empty body is not
// declared as JSON.
func checkJSONBody(c *fiber.Ctx) error {
	if len(c.Body()) == 0 {
		return nil
	}
	if !isJSONMediaType(c.Get(fiber.HeaderContentType)) {
		return fiber.ErrUnsupportedMediaType
	}
	return nil
}

func isJSONMediaType(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}
