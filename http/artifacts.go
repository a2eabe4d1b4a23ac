package http

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/saveaction/runner/artifacts"
	"github.com/saveaction/runner/persistence"
)

// Artifact links and streaming.
const (
	// DefaultArtifactLinkTTL is how long a signed artifact link works
	// unless the request asks for less or more (up to MaxArtifactLinkTTL).
	DefaultArtifactLinkTTL = 15 * time.Minute
	// MaxArtifactLinkTTL caps the lifetime of a signed link.
	MaxArtifactLinkTTL = 24 * time.Hour
	// artifactStreamTimeout bounds one artifact response body: the body is
	// streamed after the handler returns, past the request's deadline.
	artifactStreamTimeout = 30 * time.Minute
	// Query parameters of a signed link; the token never goes in a URL.
	linkExpiresParam   = "expires"
	linkSignatureParam = "signature"
)

// Locals key marking a request authorised by a signed link.
const signedLinkKey = "signedLink"

func errArtifactNotFound(format string, args ...any) *apiError {
	return newAPIError(fiber.StatusNotFound, CodeArtifactNotFound, format, args...)
}

// videoURL and screenshotURL are where the API serves a run's artifacts.
func videoURL(runID string) string { return "/api/v1/runs/" + runID + "/video" }

func screenshotURL(runID, name string) string {
	return "/api/v1/runs/" + runID + "/screenshots/" + name
}

// signLink is the signature of a link to urlPath valid until expires.
func signLink(secret []byte, urlPath string, expires int64) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(urlPath + "\n" + strconv.FormatInt(expires, 10)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// signedURL turns an artifact path into a link that works without the
// Authorization header until expires.
func (s *server) signedURL(base, urlPath string, expires time.Time) string {
	exp := expires.Unix()
	return base + urlPath + "?" + linkExpiresParam + "=" + strconv.FormatInt(exp, 10) +
		"&" + linkSignatureParam + "=" + signLink(s.linkSecret, urlPath, exp)
}

// guardArtifact authorises an artifact download: a bearer token with
// scope, or, for <img> and <video> tags that cannot send headers, a signed
// link to this very path that has not expired.
func (s *server) guardArtifact(scope string) fiber.Handler {
	bearer := s.guard(scope)
	return func(c *fiber.Ctx) error {
		sig := c.Query(linkSignatureParam)
		if sig == "" || c.Get(fiber.HeaderAuthorization) != "" {
			return bearer(c)
		}
		c.Locals(routeKey, c.Route().Path)
		exp, err := strconv.ParseInt(c.Query(linkExpiresParam), 10, 64)
		if err != nil {
			return errUnauthorized("malformed signed link: no expiry")
		}
		want := signLink(s.linkSecret, c.Path(), exp)
		if !hmac.Equal([]byte(sig), []byte(want)) {
			return errUnauthorized("invalid link signature")
		}
		if s.now().Unix() > exp {
			return errUnauthorized("this link expired at " + fmtTime(time.Unix(exp, 0)) + "; ask POST /api/v1/runs/:id/artifact-links for a new one")
		}
		c.Locals(signedLinkKey, true)
		return c.Next()
	}
}

// artifactRun loads the run an artifact request is about: the caller's
// (another user's run is 404), or any live run for a signed link, whose
// signature already names the run.
func (s *server) artifactRun(c *fiber.Ctx) (*persistence.Run, error) {
	id, err := idParam(c)
	if err != nil {
		return nil, err
	}
	ctx := c.UserContext()
	if signed, _ := c.Locals(signedLinkKey).(bool); signed {
		run, err := (&persistence.Runs{DB: s.db}).Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if run.DeletedAt != nil {
			return nil, persistence.ErrRunNotFound
		}
		return run, nil
	}
	return persistence.GetUserRun(ctx, s.db, principalOf(c).UserID, id)
}

// getVideo answers GET and HEAD /api/v1/runs/:id/video.
func (s *server) getVideo(c *fiber.Ctx) error {
	run, err := s.artifactRun(c)
	if err != nil {
		return err
	}
	for _, a := range run.Artifacts {
		if a.Kind == persistence.ArtifactVideo && (a.Key != "" || a.Status != persistence.ArtifactFailed) {
			return s.serveArtifact(c, run, a)
		}
	}
	for _, a := range run.Artifacts {
		if a.Kind == persistence.ArtifactVideo {
			return s.serveArtifact(c, run, a) // failed: says why
		}
	}
	if !run.VideoEnabled {
		return errArtifactNotFound("run %s was not recorded: create it with options.video true", run.ID)
	}
	return errArtifactNotFound("run %s has no video (yet)", run.ID)
}

// getScreenshot answers GET and HEAD /api/v1/runs/:id/screenshots/:name.
func (s *server) getScreenshot(c *fiber.Ctx) error {
	run, err := s.artifactRun(c)
	if err != nil {
		return err
	}
	name := c.Params("name")
	for _, a := range run.Artifacts {
		if a.Kind == persistence.ArtifactScreenshot && a.Name == name {
			return s.serveArtifact(c, run, a)
		}
	}
	return errArtifactNotFound("run %s has no screenshot %q", run.ID, name)
}

// screenshotView is one item of GET /runs/:id/screenshots.
type screenshotView struct {
	ActionID    string `json:"actionId"`
	ActionIndex *int   `json:"actionIndex"`
	Name        string `json:"name"`
	ContentType string `json:"contentType"`
	Size        int64  `json:"size"`
	TakenAt     string `json:"takenAt"`
	URL         string `json:"url"`
}

// listScreenshots answers GET /api/v1/runs/:id/screenshots: the run's
// stored screenshots in action order.
func (s *server) listScreenshots(c *fiber.Ctx) error {
	run, err := s.artifactRun(c)
	if err != nil {
		return err
	}
	if err := expiredError(run); err != nil {
		return err
	}
	out := []screenshotView{}
	for _, a := range run.Artifacts {
		if a.Kind != persistence.ArtifactScreenshot || a.Status != persistence.ArtifactStored {
			continue
		}
		out = append(out, screenshotView{ActionID: a.ActionID, ActionIndex: a.ActionIndex, Name: a.Name,
			ContentType: a.ContentType, Size: a.Size, TakenAt: fmtTime(a.TakenAt), URL: screenshotURL(run.ID.String(), a.Name)})
	}
	return respondList(c, out, newPagination(1, max(len(out), 1), len(out)))
}

// expiredError is 410 ARTIFACT_EXPIRED when retention removed the run's
// artifacts, nil otherwise.
func expiredError(run *persistence.Run) error {
	if run.ArtifactsExpiredAt == nil {
		return nil
	}
	ae := newAPIError(fiber.StatusGone, CodeArtifactExpired, "the artifacts of run %s were removed by retention at %s",
		run.ID, fmtTime(*run.ArtifactsExpiredAt))
	ae.Details = map[string]string{"expiredAt": fmtTime(*run.ArtifactsExpiredAt)}
	return ae
}

// serveArtifact streams a stored artifact with HTTP range support: one
// byte range per request (206 with Content-Range, 416 when it cannot be
// satisfied), validators (ETag, Last-Modified, If-None-Match, If-Range) and
// HEAD. Only the bytes asked for are read from the store.
func (s *server) serveArtifact(c *fiber.Ctx, run *persistence.Run, a persistence.Artifact) error {
	switch a.Status {
	case persistence.ArtifactExpired, persistence.ArtifactDeleted:
		when := run.ArtifactsExpiredAt
		if a.ExpiredAt != nil {
			when = a.ExpiredAt
		}
		if when == nil {
			return errArtifactNotFound("the %s of run %s was removed", a.Kind, run.ID)
		}
		ae := newAPIError(fiber.StatusGone, CodeArtifactExpired, "the %s of run %s was removed by retention at %s", a.Kind, run.ID, fmtTime(*when))
		ae.Details = map[string]string{"expiredAt": fmtTime(*when)}
		return ae
	case persistence.ArtifactFailed:
		ae := errArtifactNotFound("the %s of run %s could not be stored: %s", a.Kind, run.ID, a.Error)
		ae.Details = map[string]string{"reason": a.Error}
		return ae
	}
	if s.artifacts == nil {
		return errArtifactNotFound("this API node has no artifact store configured (ARTIFACT_STORE)")
	}
	// The body is streamed after the handler returns, so the store read
	// gets a context of its own, ended when the stream is closed.
	sctx, cancel := context.WithTimeout(context.Background(), artifactStreamTimeout)
	obj, info, err := s.artifacts.Open(sctx, a.Key)
	if err != nil {
		cancel()
		if errors.Is(err, artifacts.ErrNotFound) {
			if err := expiredError(run); err != nil {
				return err
			}
			return errArtifactNotFound("the %s of run %s is missing from the artifact store", a.Kind, run.ID)
		}
		return fmt.Errorf("%w: %w", errArtifactStore, err)
	}
	body := &streamBody{Reader: obj, obj: obj, cancel: cancel}
	handed := false
	defer func() {
		if !handed {
			_ = body.Close()
		}
	}()

	ct := info.ContentType
	if ct == "" || ct == "application/octet-stream" {
		ct = a.ContentType
	}
	c.Set(fiber.HeaderContentType, ct)
	c.Set(fiber.HeaderAcceptRanges, "bytes")
	c.Set(fiber.HeaderCacheControl, "private, max-age=300")
	if info.ETag != "" {
		c.Set(fiber.HeaderETag, info.ETag)
	}
	if !info.ModTime.IsZero() {
		c.Set(fiber.HeaderLastModified, info.ModTime.UTC().Format(nethttp.TimeFormat))
	}
	if inm := c.Get(fiber.HeaderIfNoneMatch); inm != "" && info.ETag != "" && etagListed(inm, info.ETag) {
		c.Status(fiber.StatusNotModified)
		return nil
	}

	size := info.Size
	start, length, status := int64(0), size, fiber.StatusOK
	if rh := c.Get(fiber.HeaderRange); rh != "" && ifRangeHolds(c.Get(fiber.HeaderIfRange), info) {
		r, ok, err := parseRange(rh, size)
		if err != nil {
			ae := newAPIError(fiber.StatusRequestedRangeNotSatisfiable, CodeRangeNotSatisfiable,
				"range %q cannot be satisfied: the %s has %d bytes", rh, a.Kind, size)
			ae.headers = map[string]string{fiber.HeaderContentRange: fmt.Sprintf("bytes */%d", size)}
			return ae
		}
		if ok {
			start, length, status = r.start, r.length, fiber.StatusPartialContent
			c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, size))
		}
	}
	c.Status(status)
	if c.Method() == fiber.MethodHead {
		c.Response().Header.SetContentLength(int(length))
		c.Response().SkipBody = true
		return nil
	}
	if start > 0 {
		if _, err := obj.Seek(start, io.SeekStart); err != nil {
			return fmt.Errorf("%w: seek: %w", errArtifactStore, err)
		}
	}
	body.Reader = io.LimitReader(obj, length)
	handed = true
	c.Response().SetBodyStream(body, int(length))
	return nil
}

// errArtifactStore marks a failure to reach the artifact store.
var errArtifactStore = errors.New("artifact store unavailable")

// streamBody is a response body read from the store; fasthttp closes it
// when the response is sent.
type streamBody struct {
	io.Reader
	obj    artifacts.Object
	cancel context.CancelFunc
}

func (b *streamBody) Close() error {
	err := b.obj.Close()
	b.cancel()
	return err
}

// byteRange is a satisfiable range of a file.
type byteRange struct{ start, length int64 }

// parseRange reads a Range header against a file of size bytes. ok is
// false when the header is to be ignored (not bytes, or several ranges:
// the whole file is then sent, as RFC 9110 allows); err means 416.
func parseRange(h string, size int64) (r byteRange, ok bool, err error) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return r, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return r, false, nil
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	unsatisfiable := errors.New("unsatisfiable range")
	if first == "" { // suffix: the last N bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return r, false, nil
		}
		if n == 0 || size == 0 {
			return r, false, unsatisfiable
		}
		n = min(n, size)
		return byteRange{size - n, n}, true, nil
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return r, false, nil
	}
	if a >= size {
		return r, false, unsatisfiable
	}
	b := size - 1
	if last != "" {
		if b, err = strconv.ParseInt(last, 10, 64); err != nil || b < a {
			return r, false, nil
		}
		b = min(b, size-1)
	}
	return byteRange{a, b - a + 1}, true, nil
}

// ifRangeHolds reports whether a Range applies under If-Range: the client's
// copy is still the stored one.
func ifRangeHolds(ifRange string, info artifacts.Info) bool {
	if ifRange == "" {
		return true
	}
	if strings.HasPrefix(ifRange, `"`) || strings.HasPrefix(ifRange, `W/`) {
		return ifRange == info.ETag
	}
	t, err := nethttp.ParseTime(ifRange)
	return err == nil && !info.ModTime.Truncate(time.Second).After(t)
}

func etagListed(header, etag string) bool {
	for _, e := range strings.Split(header, ",") {
		e = strings.TrimSpace(e)
		if e == "*" || strings.TrimPrefix(e, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// artifactLinksRequest is the optional body of POST /runs/:id/artifact-links.
type artifactLinksRequest struct {
	// ExpiresIn is the links' lifetime in seconds (default 900, at most 86400).
	ExpiresIn *int `json:"expiresIn"`
}

type artifactLinksView struct {
	ExpiresAt   string            `json:"expiresAt"`
	Video       *string           `json:"video"`
	Screenshots []screenshotLinkV `json:"screenshots"`
}

type screenshotLinkV struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// createArtifactLinks answers POST /api/v1/runs/:id/artifact-links: signed
// URLs of the run's video and screenshots that work without the
// Authorization header until they expire (for <video> and <img> tags).
func (s *server) createArtifactLinks(c *fiber.Ctx) error {
	ttl := DefaultArtifactLinkTTL
	if body := c.Body(); len(strings.TrimSpace(string(body))) > 0 {
		var req artifactLinksRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return invalid(problem{Path: "$", Message: "must be a JSON object"})
		}
		if req.ExpiresIn != nil {
			if *req.ExpiresIn < 1 || time.Duration(*req.ExpiresIn)*time.Second > MaxArtifactLinkTTL {
				return invalid(problem{Path: "expiresIn", Message: fmt.Sprintf("must be from 1 to %d seconds", int(MaxArtifactLinkTTL.Seconds()))})
			}
			ttl = time.Duration(*req.ExpiresIn) * time.Second
		}
	}
	run, err := s.artifactRun(c)
	if err != nil {
		return err
	}
	if err := expiredError(run); err != nil {
		return err
	}
	exp := s.now().Add(ttl).Truncate(time.Second)
	base := c.BaseURL()
	out := artifactLinksView{ExpiresAt: fmtTime(exp), Screenshots: []screenshotLinkV{}}
	id := run.ID.String()
	for _, a := range run.Artifacts {
		if a.Status != persistence.ArtifactStored {
			continue
		}
		switch a.Kind {
		case persistence.ArtifactVideo:
			u := s.signedURL(base, videoURL(id), exp)
			out.Video = &u
		case persistence.ArtifactScreenshot:
			out.Screenshots = append(out.Screenshots, screenshotLinkV{Name: a.Name, URL: s.signedURL(base, screenshotURL(id, a.Name), exp)})
		}
	}
	return respond(c, fiber.StatusOK, out)
}

// deleteArtifactsWait bounds the removal of a deleted run's files, so a
// store that is down does not hold DELETE for long.
const deleteArtifactsWait = 15 * time.Second

// deleteRunArtifacts removes a deleted run's files from the store and
// records that on the run. Failures are logged: the orphan sweep of the
// retention pass removes what is left.
func (s *server) deleteRunArtifacts(runID uuid.UUID) {
	if s.artifacts == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), deleteArtifactsWait)
	defer cancel()
	runs := &persistence.Runs{DB: s.db}
	run, err := runs.Get(ctx, runID)
	if err != nil {
		s.log.Warn("delete artifacts of a deleted run", "runId", runID, "error", err)
		return
	}
	now := s.now()
	changed := false
	for i := range run.Artifacts {
		a := &run.Artifacts[i]
		if a.Status != persistence.ArtifactStored {
			continue
		}
		if err := s.artifacts.Delete(ctx, a.Key); err != nil {
			s.log.Warn("delete artifact of a deleted run", "runId", runID, "key", a.Key, "error", err)
			continue
		}
		a.Status, a.ExpiredAt, changed = persistence.ArtifactDeleted, &now, true
	}
	if changed {
		if err := runs.MarkArtifacts(ctx, runID, run.Artifacts, nil); err != nil {
			s.log.Warn("record deleted artifacts", "runId", runID, "error", err)
		}
	}
}

// artifactBaseName is the name under which an action row's screenshot is served.
func artifactBaseName(key string) string { return path.Base(key) }
