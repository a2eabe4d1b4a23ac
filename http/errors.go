package http

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/recording"
)

// Error codes of the API (API.md). Every error response carries one.
const (
	CodeValidation          = "VALIDATION_ERROR"
	CodeInvalidRunStatus    = "INVALID_RUN_STATUS"
	CodeUnauthorized        = "UNAUTHORIZED"
	CodeInsufficientScope   = "INSUFFICIENT_SCOPE"
	CodeNotFound            = "NOT_FOUND"
	CodeMethodNotAllowed    = "METHOD_NOT_ALLOWED"
	CodeRecordingNotFound   = "RECORDING_NOT_FOUND"
	CodeRunNotFound         = "RUN_NOT_FOUND"
	CodeTokenNotFound       = "TOKEN_NOT_FOUND"
	CodeDuplicateOriginalID = "DUPLICATE_ORIGINAL_ID"
	CodePayloadTooLarge     = "PAYLOAD_TOO_LARGE"
	CodeUnsupportedMedia    = "UNSUPPORTED_MEDIA_TYPE"
	CodeRateLimited         = "RATE_LIMITED"
	CodeInternal            = "INTERNAL_ERROR"
	CodeQueueUnavailable    = "QUEUE_UNAVAILABLE"
	CodeDatabaseUnavailable = "DATABASE_UNAVAILABLE"
	// Artifacts (video, screenshots).
	CodeArtifactNotFound         = "ARTIFACT_NOT_FOUND"
	CodeArtifactExpired          = "ARTIFACT_EXPIRED"
	CodeRangeNotSatisfiable      = "RANGE_NOT_SATISFIABLE"
	CodeArtifactStoreUnavailable = "ARTIFACT_STORE_UNAVAILABLE"
)

// problem is one thing wrong with a request, at a path into the body
// (`options.timeout`), a query parameter (`limit`) or a path parameter (`id`).
type problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// apiError is an error with its HTTP answer. Handlers return these (or
// errors that apiErrorOf maps to one); nothing else writes error responses.
type apiError struct {
	Status  int
	Code    string
	Message string
	Details any
	// headers are set on the response (Retry-After, Allow).
	headers map[string]string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newAPIError(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// invalid is a VALIDATION_ERROR listing every problem.
func invalid(problems ...problem) *apiError {
	msg := "the request is invalid"
	if len(problems) == 1 {
		msg = problems[0].Path + ": " + problems[0].Message
	} else if len(problems) > 1 {
		msg = fmt.Sprintf("the request has %d problems", len(problems))
	}
	return &apiError{Status: fiber.StatusBadRequest, Code: CodeValidation, Message: msg, Details: problems}
}

// errInvalidRunStatus is the answer to an operation the run's status forbids.
func errInvalidRunStatus(format string, args ...any) *apiError {
	return newAPIError(fiber.StatusBadRequest, CodeInvalidRunStatus, format, args...)
}

// errQueueUnavailable marks a failure to reach the dispatch stream.
var errQueueUnavailable = errors.New("queue unavailable")

// apiErrorOf maps any error a handler returns to its answer: the one place
// where errors become HTTP codes. internal reports whether the error was
// unexpected (logged with its detail; the client sees a generic message).
func apiErrorOf(err error) (ae *apiError, internal bool) {
	var (
		fe   *fiber.Error
		ve   *recording.ValidationError
		dup  *persistence.DuplicateOriginalIDError
		eq   *persistence.EnqueueError
		pgEr *pgconn.PgError
	)
	switch {
	case errors.As(err, &ae):
		return ae, false
	case errors.As(err, &ve):
		ps := make([]problem, len(ve.Problems))
		for i, p := range ve.Problems {
			ps[i] = problem{Path: p.Path, Message: p.Message}
		}
		return invalid(ps...), false
	case errors.As(err, &dup):
		return &apiError{
			Status: fiber.StatusConflict, Code: CodeDuplicateOriginalID,
			Message: fmt.Sprintf("a recording with id %q already exists", dup.OriginalID),
			Details: map[string]string{"recordingId": dup.ExistingID.String()},
		}, false
	case errors.Is(err, persistence.ErrRecordingNotFound):
		return newAPIError(fiber.StatusNotFound, CodeRecordingNotFound, "recording not found"), false
	case errors.Is(err, persistence.ErrRunNotFound):
		return newAPIError(fiber.StatusNotFound, CodeRunNotFound, "run not found"), false
	case errors.Is(err, persistence.ErrBadCursor):
		return invalid(problem{Path: "cursor", Message: "was made for another sortBy or sortOrder"}), false
	case errors.Is(err, persistence.ErrTokenNotFound):
		return newAPIError(fiber.StatusNotFound, CodeTokenNotFound, "token not found"), false
	case errors.Is(err, persistence.ErrTokenInvalid):
		return newAPIError(fiber.StatusUnauthorized, CodeUnauthorized, "invalid, revoked or expired token"), false
	case errors.As(err, &eq), errors.Is(err, errQueueUnavailable):
		return newAPIError(fiber.StatusServiceUnavailable, CodeQueueUnavailable, "the run queue is unavailable; no run was created"), true
	case errors.Is(err, errArtifactStore):
		return newAPIError(fiber.StatusServiceUnavailable, CodeArtifactStoreUnavailable, "the artifact store is unavailable"), true
	case errors.As(err, &fe):
		return fiberError(fe), fe.Code >= 500
	case errors.As(err, &pgEr) && (pgEr.Code == "22P05" || pgEr.Code == "22021"):
		// Text PostgreSQL cannot store: \u0000 in JSON, invalid UTF-8.
		return invalid(problem{Path: "$", Message: "contains characters that cannot be stored (NUL or invalid UTF-8)"}), false
	case persistence.IsUnavailable(err) && !errors.Is(err, context.Canceled):
		return newAPIError(fiber.StatusServiceUnavailable, CodeDatabaseUnavailable, "the database is unavailable"), true
	}
	return newAPIError(fiber.StatusInternalServerError, CodeInternal, "internal error"), true
}

// fiberError maps the errors Fiber and fasthttp raise themselves.
func fiberError(fe *fiber.Error) *apiError {
	switch fe.Code {
	case fiber.StatusNotFound:
		return newAPIError(fe.Code, CodeNotFound, "no such route")
	case fiber.StatusMethodNotAllowed:
		return newAPIError(fe.Code, CodeMethodNotAllowed, "method not allowed on this route")
	case fiber.StatusRequestEntityTooLarge:
		return newAPIError(fe.Code, CodePayloadTooLarge, "the body is larger than %d bytes", BodyLimit)
	case fiber.StatusUnsupportedMediaType:
		return newAPIError(fe.Code, CodeUnsupportedMedia, "the body must be JSON (Content-Type: application/json)")
	case fiber.StatusTooManyRequests:
		return newAPIError(fe.Code, CodeRateLimited, "too many requests")
	case fiber.StatusUnauthorized:
		return newAPIError(fe.Code, CodeUnauthorized, "unauthorized")
	case fiber.StatusRequestHeaderFieldsTooLarge, fiber.StatusRequestTimeout, fiber.StatusBadRequest:
		// fasthttp's own parse errors: say what kind without echoing internals.
		return invalid(problem{Path: "$", Message: strings.ToLower(fiberStatusText(fe.Code))})
	}
	if fe.Code >= 500 {
		return newAPIError(fiber.StatusInternalServerError, CodeInternal, "internal error")
	}
	return invalid(problem{Path: "$", Message: "bad request"})
}

func fiberStatusText(code int) string {
	switch code {
	case fiber.StatusRequestHeaderFieldsTooLarge:
		return "request headers too large"
	case fiber.StatusRequestTimeout:
		return "request timed out"
	}
	return "malformed request"
}

// errorBody is the one error shape of the API.
type errorBody struct {
	Success bool         `json:"success"`
	Error   errorPayload `json:"error"`
}

type errorPayload struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Details   any    `json:"details,omitempty"`
	RequestID string `json:"requestId"`
}

// writeError answers c with err in the error shape, logging unexpected
// errors with their detail under the request id.
func (s *server) writeError(c *fiber.Ctx, err error) {
	ae, internal := apiErrorOf(err)
	rid := s.requestID(c)
	if internal {
		s.log.Error("request failed", "requestId", rid, "method", c.Method(), "path", c.Path(),
			"code", ae.Code, "err", err)
	}
	for k, v := range ae.headers {
		c.Set(k, v)
	}
	c.Status(ae.Status)
	if err := c.JSON(errorBody{Error: errorPayload{Code: ae.Code, Message: ae.Message, Details: ae.Details, RequestID: rid}}); err != nil {
		s.log.Error("write error response", "requestId", rid, "err", err)
	}
}

// handleError is Fiber's ErrorHandler: it sees what the middleware chain
// did not (fasthttp's own errors such as a body over the limit).
func (s *server) handleError(c *fiber.Ctx, err error) error {
	s.writeError(c, err)
	return nil
}
