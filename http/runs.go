package http

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/recording"
)

// HeaderIdempotencyKey makes POST /api/v1/runs repeatable.
const HeaderIdempotencyKey = "Idempotency-Key"

// casRetries bounds how often a handler re-reads a run whose status moved
// under its compare-and-set.
const casRetries = 5

// deleteCancelWait is how long DELETE waits for the worker of a running run
// to confirm its cancel; the run is deleted either way.
const deleteCancelWait = time.Second

// enqueue puts a run on the dispatch stream for persistence.CreateRun.
func (s *server) enqueue(ctx context.Context, id uuid.UUID) (string, string, error) {
	// run.queued goes out just before the dispatch entry, so no worker can
	// publish run.started ahead of it; should the transaction then roll
	// back, the event names a run nobody can read (404) and expires.
	s.publishQueued(ctx, id)
	entryID, err := s.dispatcher.Enqueue(ctx, id)
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", errQueueUnavailable, err)
	}
	name := DefaultQueueName
	if n, ok := s.dispatcher.(streamNamer); ok {
		name = n.Stream()
	}
	return name, entryID, nil
}

// actionRefs lists the recording's actions in replay order.
func actionRefs(data []byte) ([]persistence.ActionRef, *recording.Recording, error) {
	rec, err := recording.Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("stored recording no longer parses: %w", err)
	}
	norm := recording.Normalize(rec)
	refs := make([]persistence.ActionRef, len(norm.Actions))
	for i, a := range norm.Actions {
		refs[i] = persistence.ActionRef{ID: a.ID, Type: a.Type}
	}
	return refs, rec, nil
}

// recordingForRun loads userID's recording id without its data and the
// action references of its current version: from the node's cache when it
// holds that version, else read from the data and kept.
func (s *server) recordingForRun(ctx context.Context, userID, id uuid.UUID) (*persistence.Recording, recordingRefs, error) {
	rec, err := persistence.GetRecording(ctx, s.db, userID, id, false)
	if err != nil {
		return nil, recordingRefs{}, err
	}
	if e, ok := s.refs.get(rec.ID, rec.Version); ok {
		return rec, e, nil
	}
	full, err := persistence.GetRecording(ctx, s.db, userID, id, true)
	if err != nil {
		return nil, recordingRefs{}, err
	}
	refs, parsed, err := actionRefs(full.Data)
	if err != nil {
		return nil, recordingRefs{}, err
	}
	e := recordingRefs{version: full.Version, refs: refs, vars: parsed.VariableNames()}
	s.refs.put(full.ID, e)
	return full, e, nil
}

// createRun answers POST /api/v1/runs.
func (s *server) createRun(c *fiber.Ctx) error {
	req, ps := parseCreateRun(c.Body(), s.browsers)
	key := c.Get(HeaderIdempotencyKey)
	ps = append(ps, checkIdempotencyKey(key)...)
	if len(ps) > 0 {
		return invalid(ps...)
	}
	ctx := c.UserContext()
	user := principalOf(c).UserID
	rec, refs, err := s.recordingForRun(ctx, user, req.RecordingID)
	if err != nil {
		return err
	}
	if ps := checkVariables(req.Variables, refs.vars); len(ps) > 0 {
		return invalid(ps...)
	}
	run := &persistence.Run{
		UserID: user, RecordingID: rec.ID, RecordingVersion: rec.Version, RecordingName: rec.Name, RecordingURL: rec.URL,
		Variables: req.Variables, TriggeredBy: req.TriggeredBy, CIMetadata: req.CIMetadata,
	}
	if key != "" {
		run.IdempotencyKey = &key
	}
	if err := req.Options.ApplyTo(run); err != nil {
		return err
	}
	created, replayed, err := persistence.CreateRun(ctx, s.db, persistence.NewRun{
		Run: run, Actions: refs.refs, Enqueue: s.enqueue, Now: s.now(),
	})
	if err != nil {
		return err
	}
	if replayed {
		c.Set("Idempotent-Replayed", "true")
	}
	return respond(c, fiber.StatusCreated, newRunCreatedView(created))
}

// getRun answers GET /api/v1/runs/:id.
func (s *server) getRun(c *fiber.Ctx) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	run, rows, err := persistence.GetUserRunHealth(c.UserContext(), s.db, principalOf(c).UserID, id)
	if err != nil {
		return err
	}
	v := newRunView(run)
	v.SelectorHealth = newHealthSummary(rows)
	return respond(c, fiber.StatusOK, v)
}

// runTotalExactUpTo is how many runs GET /runs counts exactly before it
// answers the planner's estimate (unless total=exact).
const runTotalExactUpTo = 1000

// listRuns answers GET /api/v1/runs: a page read by keyset (the first, the
// page-th by offset, or the one after cursor), and a total that is exact up
// to runTotalExactUpTo runs or when total=exact is asked, an estimate
// beyond (counting 100k rows on every request would cost more than the
// page itself).
func (s *server) listRuns(c *fiber.Ctx) error {
	q, ps := parseRunListQuery(queryValues(c))
	if len(ps) > 0 {
		return invalid(ps...)
	}
	ctx := c.UserContext()
	rq := persistence.RunQuery{
		UserID: principalOf(c).UserID, Limit: q.Limit, Offset: q.offset(),
		Statuses: q.Statuses, RecordingID: q.RecordingID, Browser: q.Browser, TriggeredBy: q.TriggeredBy,
		SortBy: q.SortBy, Asc: q.Asc,
	}
	runs, next, err := persistence.ListRunsPage(ctx, s.db, rq, q.Cursor)
	if err != nil {
		return err
	}
	total, exact, err := s.countRuns(ctx, rq, q.ExactTotal)
	if err != nil {
		return err
	}
	out := make([]runView, len(runs))
	for i := range runs {
		out[i] = newRunView(&runs[i])
	}
	p := newPagination(q.Page, q.Limit, total)
	p.HasNext = next != nil
	p.HasPrevious = q.Page > 1 || q.Cursor != nil
	p.TotalExact = &exact
	if next != nil {
		p.NextCursor = encodeRunCursor(next)
	}
	return respondList(c, out, p)
}

// countRuns counts q's runs, exactly when asked or when few; an estimate
// is kept for a few seconds per filter, since a client paging a long list
// asks for the same one again and again.
func (s *server) countRuns(ctx context.Context, q persistence.RunQuery, exact bool) (int, bool, error) {
	key := ""
	if !exact {
		key = fmt.Sprintf("%s|%v|%v|%s|%s", q.UserID, q.Statuses, q.RecordingID, q.Browser, q.TriggeredBy)
		if n, ok := s.estimates.get(key, time.Now()); ok {
			return n, false, nil
		}
	}
	n, isExact, err := persistence.CountRuns(ctx, s.db, q, exact, runTotalExactUpTo)
	if err != nil {
		return 0, false, err
	}
	if !isExact {
		s.estimates.put(key, n, time.Now())
	}
	return n, isExact, nil
}

// listRunActions answers GET /api/v1/runs/:id/actions: every action of the
// run in replay order, on one page.
func (s *server) listRunActions(c *fiber.Ctx) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	rows, err := persistence.ListUserRunActions(c.UserContext(), s.db, principalOf(c).UserID, id)
	if err != nil {
		return err
	}
	out := make([]actionView, len(rows))
	for i := range rows {
		out[i] = newActionView(&rows[i])
	}
	return respondList(c, out, newPagination(1, max(len(out), 1), len(out)))
}

// cancel moves userID's run id towards cancelled: a queued run is cancelled
// at once; for a running one the request is recorded and the owning worker
// asked, waiting up to wait for it to confirm. It returns the
// run as it then is; ErrStale-style races are retried. A finished run is
// INVALID_RUN_STATUS.
func (s *server) cancel(ctx context.Context, userID, id uuid.UUID, wait time.Duration) (*persistence.Run, error) {
	for range casRetries {
		run, err := persistence.GetUserRun(ctx, s.db, userID, id)
		if err != nil {
			return nil, err
		}
		switch run.Status {
		case persistence.StatusQueued:
			err := persistence.CancelQueuedUserRun(ctx, s.db, userID, id, s.now())
			if errors.Is(err, persistence.ErrStale) {
				continue // a worker started it meanwhile
			}
			if err != nil {
				return nil, err
			}
			s.publishFinished(s.db, id)
			return persistence.GetUserRun(ctx, s.db, userID, id)
		case persistence.StatusRunning:
			err := persistence.RequestUserRunCancel(ctx, s.db, userID, id, s.now())
			if errors.Is(err, persistence.ErrStale) {
				continue // it finished or went back to queued meanwhile
			}
			if err != nil {
				return nil, err
			}
			if s.canceller != nil {
				run, err = persistence.GetUserRun(ctx, s.db, userID, id)
				if err != nil {
					return nil, err
				}
				if _, err := s.canceller.CancelRun(ctx, run, wait); err != nil {
					// The flag is recorded: the worker will see it at its next lease renewal.
					s.log.Warn("cancel message not delivered", "runId", id, "err", err)
				}
			}
			return persistence.GetUserRun(ctx, s.db, userID, id)
		default:
			return run, errInvalidRunStatus("run %s is already %s", id, run.Status)
		}
	}
	return nil, fmt.Errorf("cancel run %s: status kept changing", id)
}

// cancelRun answers POST /api/v1/runs/:id/cancel: 200 with the final run
// when it ended, 202 with cancelRequestedAt when the worker has not
// confirmed yet, 400 when it had already finished.
func (s *server) cancelRun(c *fiber.Ctx) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	run, err := s.cancel(c.UserContext(), principalOf(c).UserID, id, CancelWait)
	if err != nil {
		return err
	}
	status := fiber.StatusOK
	if !persistence.IsTerminal(run.Status) {
		status = fiber.StatusAccepted
	}
	return respond(c, status, newRunView(run))
}

// deleteRun answers DELETE /api/v1/runs/:id: an unfinished run is cancelled
// first, then the run is soft-deleted.
func (s *server) deleteRun(c *fiber.Ctx) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	user := principalOf(c).UserID
	run, err := persistence.GetUserRun(ctx, s.db, user, id)
	if err != nil {
		return err
	}
	if !persistence.IsTerminal(run.Status) {
		if _, err := s.cancel(ctx, user, id, deleteCancelWait); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Code != CodeInvalidRunStatus { // finished meanwhile: fine
				return err
			}
		}
	}
	now := s.now()
	if err := persistence.SoftDeleteUserRun(ctx, s.db, user, id, now); err != nil {
		return err
	}
	s.deleteRunArtifacts(id)
	return respond(c, fiber.StatusOK, fiber.Map{"id": id.String(), "deletedAt": fmtTime(now)})
}

// retryRun answers POST /api/v1/runs/:id/retry: a new run of the same
// recording with the same options and variables.
func (s *server) retryRun(c *fiber.Ctx) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	user := principalOf(c).UserID
	src, err := persistence.GetUserRun(ctx, s.db, user, id)
	if err != nil {
		return err
	}
	if !persistence.IsTerminal(src.Status) {
		return errInvalidRunStatus("run %s is still %s; only a finished run can be retried", id, src.Status)
	}
	rec, err := persistence.GetRecording(ctx, s.db, user, src.RecordingID, true)
	if err != nil {
		return err
	}
	refs, _, err := actionRefs(rec.Data)
	if err != nil {
		return err
	}
	run := &persistence.Run{
		UserID: user, RecordingID: rec.ID, RecordingVersion: rec.Version, RecordingName: rec.Name, RecordingURL: rec.URL,
		Browser: src.Browser, Headless: src.Headless, VideoEnabled: src.VideoEnabled,
		ScreenshotEnabled: src.ScreenshotEnabled, ScreenshotMode: src.ScreenshotMode, Timeout: src.Timeout,
		TimingEnabled: src.TimingEnabled, TimingMode: src.TimingMode, SpeedMultiplier: src.SpeedMultiplier,
		ContinueOnError: src.ContinueOnError, AssertAutoCheckpoints: src.AssertAutoCheckpoints,
		Options: src.Options, Variables: src.Variables, TriggeredBy: src.TriggeredBy, CIMetadata: src.CIMetadata,
		RetryOf: &src.ID,
	}
	created, _, err := persistence.CreateRun(ctx, s.db, persistence.NewRun{
		Run: run, Actions: refs, Enqueue: s.enqueue, Now: s.now(),
	})
	if err != nil {
		return err
	}
	return respond(c, fiber.StatusCreated, newRunCreatedView(created))
}
