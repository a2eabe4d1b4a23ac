package http

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/queue"
	"github.com/uptrace/bun"
)

// Settings of the event stream (GET /api/v1/runs/:id/events).
const (
	// DefaultHeartbeat is the interval of the comment that keeps proxies
	// from closing a quiet stream.
	DefaultHeartbeat = 15 * time.Second
	// hubBlock is how long one blocking read of a hub waits; it bounds how
	// long a hub outlives its last subscriber.
	hubBlock = 2 * time.Second
	// subscriberBuffer is how many events a slow client may be behind
	// before it is dropped; it reconnects with Last-Event-ID and loses
	// nothing.
	subscriberBuffer = 64
	// catchUpPage is the page size of the replay from the stream.
	catchUpPage = 1000
	// lostEventsAfter is how long after a run finished in the database a
	// stream may still lack run.finished (the worker publishes it just
	// after its write) before the stream makes it up from the row.
	lostEventsAfter = 10 * time.Second
	// sseRetryMs is the reconnection delay suggested to EventSource clients.
	sseRetryMs = 2000
)

// hubs serve every SSE subscriber of this node: one hub per watched run
// holds the only Redis read of that run and fans its events out.
type hubs struct {
	events *queue.Events
	log    *slog.Logger
	ctx    context.Context // ends on API shutdown

	mu sync.Mutex
	m  map[uuid.UUID]*hub
}

type hub struct {
	run    uuid.UUID
	ready  chan struct{} // closed once cursor is known
	err    error         // set before ready closes when the hub could not start
	cursor string        // the hub loop's own
	subs   map[*subscriber]struct{}
}

type subscriber struct {
	h  *hub
	ch chan queue.Event // closed when the hub drops it (too slow) or stops
}

func newHubs(ctx context.Context, ev *queue.Events, log *slog.Logger) *hubs {
	return &hubs{events: ev, log: log, ctx: ctx, m: map[uuid.UUID]*hub{}}
}

// subscribe joins run id's hub, starting it if needed. Every event after the
// stream's last id at the time the hub started reaches the subscriber, so
// a replay read after subscribe returns misses nothing.
func (hs *hubs) subscribe(id uuid.UUID) (*subscriber, error) {
	hs.mu.Lock()
	h := hs.m[id]
	if h == nil {
		h = &hub{run: id, ready: make(chan struct{}), subs: map[*subscriber]struct{}{}}
		hs.m[id] = h
		go hs.loop(h)
	}
	sub := &subscriber{h: h, ch: make(chan queue.Event, subscriberBuffer)}
	h.subs[sub] = struct{}{}
	hs.mu.Unlock()
	select {
	case <-h.ready:
	case <-hs.ctx.Done():
		hs.unsubscribe(sub)
		return nil, hs.ctx.Err()
	}
	if h.err != nil {
		hs.unsubscribe(sub)
		return nil, h.err
	}
	return sub, nil
}

func (hs *hubs) unsubscribe(sub *subscriber) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if _, ok := sub.h.subs[sub]; ok {
		delete(sub.h.subs, sub)
		close(sub.ch)
	}
}

// loop is a hub's one Redis read: it blocks for new events and hands each
// to every subscriber; it ends when it has none left, or on shutdown.
func (hs *hubs) loop(h *hub) {
	defer func() {
		hs.mu.Lock()
		for sub := range h.subs {
			delete(h.subs, sub)
			close(sub.ch)
		}
		if hs.m[h.run] == h {
			delete(hs.m, h.run)
		}
		hs.mu.Unlock()
	}()
	ctx := hs.ctx
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	last, err := hs.events.Last(lctx, h.run)
	cancel()
	if err != nil {
		h.err = err
		close(h.ready)
		return
	}
	h.cursor = last
	if h.cursor == "" {
		h.cursor = "0"
	}
	close(h.ready)
	for {
		hs.mu.Lock()
		idle := len(h.subs) == 0
		if idle {
			delete(hs.m, h.run)
		}
		hs.mu.Unlock()
		if idle || ctx.Err() != nil {
			return
		}
		evs, err := hs.events.Wait(ctx, h.run, h.cursor, hubBlock)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			hs.log.Warn("read run events", "runId", h.run.String(), "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		if len(evs) == 0 {
			continue
		}
		h.cursor = evs[len(evs)-1].ID
		hs.mu.Lock()
		for sub := range h.subs {
			for _, ev := range evs {
				select {
				case sub.ch <- ev:
				default:
					// Too slow: drop it rather than hold the others back.
					delete(h.subs, sub)
					close(sub.ch)
				}
				if _, ok := h.subs[sub]; !ok {
					break
				}
			}
		}
		hs.mu.Unlock()
	}
}

// lastEventID reads Last-Event-ID from the header or ?lastEventId=.
func lastEventID(c *fiber.Ctx) (string, error) {
	v := c.Get("Last-Event-ID")
	if v == "" {
		v = c.Query("lastEventId")
	}
	if v != "" && !queue.ValidEventID(v) {
		return "", invalid(problem{Path: "Last-Event-ID", Message: "must be an event id as sent in the stream (e.g. 1764645600000-0)"})
	}
	return v, nil
}

// runEvents answers GET /api/v1/runs/:id/events: the run's events as
// Server-Sent Events, replayed after Last-Event-ID, then live until
// run.finished.
func (s *server) runEvents(c *fiber.Ctx) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	after, err := lastEventID(c)
	if err != nil {
		return err
	}
	user := principalOf(c).UserID
	if _, err := persistence.GetUserRun(c.UserContext(), s.db, user, id); err != nil {
		return err
	}
	if s.hubs == nil {
		return newAPIError(fiber.StatusServiceUnavailable, CodeQueueUnavailable, "live events are not available on this node")
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no") // nginx: pass events through at once
	c.Status(fiber.StatusOK)
	// The request's context ends when this handler returns; the stream
	// runs later, in fasthttp's writer, on a context of its own.
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		s.streamEvents(w, id, after)
	})
	return nil
}

// streamEvents writes the stream: replay from the stream after after, then
// the hub's events, until run.finished, the client leaving, or shutdown.
func (s *server) streamEvents(w *bufio.Writer, id uuid.UUID, after string) {
	ctx := s.hubs.ctx
	s.metrics.sseClients.Inc()
	defer s.metrics.sseClients.Dec()
	fmt.Fprintf(w, "retry: %d\n: run %s\n\n", sseRetryMs, id)
	if w.Flush() != nil {
		return
	}
	sub, err := s.hubs.subscribe(id)
	if err != nil {
		// The client reconnects with its Last-Event-ID.
		s.log.Warn("event stream: subscribe", "runId", id.String(), "error", err)
		return
	}
	defer s.hubs.unsubscribe(sub)

	cursor := after
	write := func(ev queue.Event) bool {
		fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", ev.ID, ev.Name, ev.Data)
		return w.Flush() == nil
	}
	// Replay what the stream holds after the client's last event.
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		evs, err := s.hubs.events.Range(rctx, id, cursor, catchUpPage)
		cancel()
		if err != nil {
			s.log.Warn("event stream: replay", "runId", id.String(), "error", err)
			return
		}
		for _, ev := range evs {
			if !write(ev) {
				return
			}
			cursor = ev.ID
			if ev.Name == queue.EventRunFinished {
				return
			}
		}
		if len(evs) < catchUpPage {
			break
		}
	}
	// Nothing after the client's position and the run is over: the row
	// tells how it ended.
	if s.finishedFromDB(w, id, cursor, true) {
		return
	}
	beat := time.NewTicker(s.heartbeat)
	defer beat.Stop()
	for {
		select {
		case ev, ok := <-sub.ch:
			if !ok {
				return // dropped for being slow, or shutdown: the client reconnects
			}
			if cursor != "" && !queue.EventIDLess(cursor, ev.ID) {
				continue // already sent by the replay
			}
			if !write(ev) {
				return
			}
			cursor = ev.ID
			if ev.Name == queue.EventRunFinished {
				return
			}
		case <-beat.C:
			if _, err := w.WriteString(": heartbeat\n\n"); err != nil || w.Flush() != nil {
				return
			}
			// A run that ended long ago with no run.finished in its
			// stream lost its events (Redis restarted, publishing
			// failed): end the stream from the row.
			if s.finishedFromDB(w, id, cursor, false) {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// finishedFromDB writes run.finished built from the run's row when the run
// has ended and its stream will not say so: the stream is empty (expired,
// or never written; checked at the start), or the run ended more than
// lostEventsAfter ago (its run.finished was lost, or the client resumed
// after it). It reports whether it wrote one.
func (s *server) finishedFromDB(w *bufio.Writer, id uuid.UUID, cursor string, atStart bool) bool {
	ctx, cancel := context.WithTimeout(s.hubs.ctx, 5*time.Second)
	defer cancel()
	run := new(persistence.Run)
	err := s.db.NewSelect().Model(run).Where("id = ?", id).Scan(ctx)
	if err != nil || !persistence.IsTerminal(run.Status) {
		return false
	}
	ended := run.CompletedAt != nil && time.Since(*run.CompletedAt) >= lostEventsAfter
	if !ended {
		if !atStart {
			return false
		}
		// The worker publishes run.finished just after its write: wait for
		// it unless the stream is empty.
		if last, err := s.hubs.events.Last(ctx, id); err != nil || last != "" {
			return false
		}
	}
	ev := runFinishedOf(run)
	ev.ID = synthID(run, cursor)
	fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", ev.ID, ev.Name, ev.Data)
	_ = w.Flush()
	return true
}

// synthID is the id of a run.finished made up from the row: after the
// client's cursor, so a client that resumes from it sees it as new.
func synthID(run *persistence.Run, cursor string) string {
	ms := run.UpdatedAt.UnixMilli()
	id := strconv.FormatInt(ms, 10) + "-0"
	if cursor != "" && !queue.EventIDLess(cursor, id) {
		ms2, _ := strconv.ParseInt(cursorMs(cursor), 10, 64)
		id = strconv.FormatInt(ms2+1, 10) + "-0"
	}
	return id
}

func cursorMs(c string) string {
	for i := 0; i < len(c); i++ {
		if c[i] == '-' {
			return c[:i]
		}
	}
	return c
}

// runFinishedOf is run.finished from a run's row.
func runFinishedOf(r *persistence.Run) queue.Event {
	d := queue.RunFinishedData{
		Status: string(r.Status), ActionsTotal: r.ActionsTotal, ActionsExecuted: r.ActionsExecuted,
		ActionsFailed: r.ActionsFailed, ActionsSkipped: r.ActionsSkipped,
	}
	if r.DurationMs != nil {
		d.DurationMs = *r.DurationMs
	}
	if r.ErrorMessage != nil {
		d.Error = *r.ErrorMessage
	}
	if r.ErrorActionID != nil {
		d.ErrorActionID = *r.ErrorActionID
	}
	return queue.RunFinished(d)
}

// publishFinished publishes run.finished of a run the API itself ended
// (cancel of a queued run), so its subscribers end at once.
func (s *server) publishFinished(db bun.IDB, id uuid.UUID) {
	if s.events == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), queue.DefaultPublishTimeout)
	defer cancel()
	run := new(persistence.Run)
	if err := db.NewSelect().Model(run).Where("id = ?", id).Scan(ctx); err != nil {
		s.log.Warn("publish run.finished: read run", "runId", id.String(), "error", err)
		return
	}
	if _, err := s.events.PublishNow(ctx, id, runFinishedOf(run)); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("publish run.finished", "runId", id.String(), "error", err)
	}
}

// publishQueued publishes run.queued, bounded in time: a run is created
// whether or not its event could be written.
func (s *server) publishQueued(ctx context.Context, id uuid.UUID) {
	if s.events == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, queue.DefaultPublishTimeout)
	defer cancel()
	if _, err := s.events.PublishNow(ctx, id, queue.RunQueued()); err != nil {
		s.log.Warn("publish run.queued", "runId", id.String(), "error", err)
	}
}
