// Package queue dispatches runs through a Redis stream read by a consumer
// group: one entry per run, at-least-once delivery, leases kept by the
// owner's renewals and reclaimed when idle (DESIGN.md rule 2). PostgreSQL
// stays the truth; an entry only says "look at this run".
package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Defaults of a Queue.
const (
	DefaultGroup  = "workers"
	DefaultStream = "runs"
)

// Queue is the run dispatch stream under a key prefix.
type Queue struct {
	rdb    redis.UniversalClient
	stream string
	dead   string
	group  string
}

// New returns the queue whose keys start with prefix (e.g. "sa:").
func New(rdb redis.UniversalClient, prefix string) *Queue {
	return &Queue{
		rdb:    rdb,
		stream: prefix + DefaultStream,
		dead:   prefix + DefaultStream + ":dead",
		group:  DefaultGroup,
	}
}

// Stream is the key of the dispatch stream.
func (q *Queue) Stream() string { return q.stream }

// DeadStream is the key of the dead-letter stream.
func (q *Queue) DeadStream() string { return q.dead }

// Entry is one delivered stream entry.
type Entry struct {
	ID    string
	RunID uuid.UUID
	// Bad is set when the entry's fields could not be read; such entries are
	// acknowledged and dropped by the consumer.
	Bad bool
}

// EnsureGroup creates the stream and its consumer group if missing.
func (q *Queue) EnsureGroup(ctx context.Context) error {
	err := q.rdb.XGroupCreateMkStream(ctx, q.stream, q.group, "0").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create consumer group %s on %s: %w", q.group, q.stream, err)
	}
	return nil
}

// Enqueue adds an entry for run id and returns the entry id.
func (q *Queue) Enqueue(ctx context.Context, id uuid.UUID) (string, error) {
	entryID, err := q.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: q.stream,
		Values: map[string]any{"runId": id.String()},
	}).Result()
	if err != nil {
		return "", fmt.Errorf("enqueue run %s: %w", id, err)
	}
	return entryID, nil
}

// Pull reads up to count new entries for consumer, blocking up to block.
// It returns no entries and no error when nothing arrived in time.
func (q *Queue) Pull(ctx context.Context, consumer string, count int, block time.Duration) ([]Entry, error) {
	res, err := q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group:    q.group,
		Consumer: consumer,
		Streams:  []string{q.stream, ">"},
		Count:    int64(count),
		Block:    block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil && strings.Contains(err.Error(), "NOGROUP") {
		// Redis lost the stream (restart, flush): make it again and go on.
		if gerr := q.EnsureGroup(ctx); gerr != nil {
			return nil, gerr
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pull from %s: %w", q.stream, err)
	}
	var out []Entry
	for _, s := range res {
		for _, m := range s.Messages {
			out = append(out, toEntry(m))
		}
	}
	return out, nil
}

func toEntry(m redis.XMessage) Entry {
	e := Entry{ID: m.ID}
	raw, _ := m.Values["runId"].(string)
	id, err := uuid.Parse(raw)
	if err != nil {
		e.Bad = true
		return e
	}
	e.RunID = id
	return e
}

// Renew resets the idle time of an entry the consumer owns: its lease.
// It reports false when the entry is no longer pending for anyone (acked,
// or lost with the stream), which the owner should treat as a lost lease
// only if PostgreSQL agrees.
func (q *Queue) Renew(ctx context.Context, consumer, entryID string) (bool, error) {
	ids, err := q.rdb.XClaimJustID(ctx, &redis.XClaimArgs{
		Stream:   q.stream,
		Group:    q.group,
		Consumer: consumer,
		MinIdle:  0,
		Messages: []string{entryID},
	}).Result()
	if err != nil {
		if strings.Contains(err.Error(), "NOGROUP") {
			return false, nil
		}
		return false, fmt.Errorf("renew lease on %s: %w", entryID, err)
	}
	return len(ids) == 1, nil
}

// Ack acknowledges and deletes an entry: the run behind it is finished.
func (q *Queue) Ack(ctx context.Context, entryID string) error {
	// One command, atomic (a MULTI of XACK and XDEL was four).
	err := ackScript.Run(ctx, q.rdb, []string{q.stream}, q.group, entryID).Err()
	if err != nil && !errors.Is(err, redis.Nil) && !strings.Contains(err.Error(), "NOGROUP") {
		return fmt.Errorf("ack %s: %w", entryID, err)
	}
	return nil
}

// ackScript acknowledges and deletes one entry. KEYS[1] the stream; ARGV:
// group, entry id.
var ackScript = redis.NewScript(`
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return redis.call('XDEL', KEYS[1], ARGV[2])`)

// Reclaim takes over up to count entries idle for longer than minIdle (their
// owner stopped renewing) for consumer, walking the pending list from
// cursor ("" or "0-0" for its start). Redis looks at no more than ten times
// COUNT pending entries a call, so one call from the start would never
// reach a dead worker's entries behind many live ones: Reclaim goes on
// from where each call stopped until it has count entries or has walked the
// whole list. It returns the cursor to start the next pass from ("0-0" once
// the list was walked to its end).
func (q *Queue) Reclaim(ctx context.Context, consumer string, minIdle time.Duration, count int, cursor string) ([]Entry, string, error) {
	if cursor == "" {
		cursor = "0-0"
	}
	var out []Entry
	for calls := 0; len(out) < count; calls++ {
		msgs, next, err := q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream:   q.stream,
			Group:    q.group,
			Consumer: consumer,
			MinIdle:  minIdle,
			Start:    cursor,
			Count:    int64(count - len(out)),
		}).Result()
		if err != nil {
			if strings.Contains(err.Error(), "NOGROUP") {
				return out, "0-0", q.EnsureGroup(ctx)
			}
			return out, cursor, fmt.Errorf("reclaim from %s: %w", q.stream, err)
		}
		for _, m := range msgs {
			out = append(out, toEntry(m))
		}
		cursor = next
		if cursor == "0-0" || calls >= maxReclaimCalls {
			break
		}
	}
	return out, cursor, nil
}

// maxReclaimCalls bounds one Reclaim pass: with COUNT 1 each call looks at
// ten pending entries, so a pass walks at least ten thousand.
const maxReclaimCalls = 1000

// DeadLetter moves an entry to the dead-letter stream with a reason.
func (q *Queue) DeadLetter(ctx context.Context, e Entry, reason string) error {
	pipe := q.rdb.TxPipeline()
	pipe.XAdd(ctx, &redis.XAddArgs{
		Stream: q.dead,
		MaxLen: 10000,
		Approx: true,
		Values: map[string]any{"runId": e.RunID.String(), "entryId": e.ID, "reason": reason},
	})
	pipe.XAck(ctx, q.stream, q.group, e.ID)
	pipe.XDel(ctx, q.stream, e.ID)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("dead-letter %s: %w", e.ID, err)
	}
	return nil
}

// Stats describe the backlog for metrics.
type Stats struct {
	Depth     int64         // entries not yet delivered plus pending ones
	Pending   int64         // delivered, not yet acknowledged
	OldestAge time.Duration // age of the oldest entry still in the stream
}

// Stats reads the backlog of the stream: its length, pending count and
// oldest entry in one round trip. It fails when the length or the oldest
// entry cannot be read (a missing pending count, as before the group
// exists, is zero): a partial answer would say "entries waiting, the oldest
// 0 s old".
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	pipe := q.rdb.Pipeline()
	length := pipe.XLen(ctx, q.stream)
	pending := pipe.XPending(ctx, q.stream, q.group)
	first := pipe.XRangeN(ctx, q.stream, "-", "+", 1)
	_, _ = pipe.Exec(ctx) // each command's own error is read below
	n, err := length.Result()
	if err != nil {
		return st, fmt.Errorf("stream length: %w", err)
	}
	oldest, err := first.Result()
	if err != nil {
		return st, fmt.Errorf("oldest entry: %w", err)
	}
	st.Depth = n
	if p, err := pending.Result(); err == nil {
		st.Pending = p.Count
	}
	if len(oldest) == 1 {
		if ms, ok := entryTime(oldest[0].ID); ok {
			st.OldestAge = time.Since(ms)
		}
	}
	return st, nil
}

// Contains reports whether the stream still holds an entry for run id among
// the given entry id (used by the reconciler to find runs Redis lost).
func (q *Queue) Contains(ctx context.Context, entryID string) (bool, error) {
	if entryID == "" {
		return false, nil
	}
	msgs, err := q.rdb.XRangeN(ctx, q.stream, entryID, entryID, 1).Result()
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", entryID, err)
	}
	return len(msgs) == 1, nil
}

func entryTime(id string) (time.Time, bool) {
	ms, _, ok := strings.Cut(id, "-")
	if !ok {
		return time.Time{}, false
	}
	var v int64
	if _, err := fmt.Sscan(ms, &v); err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(v), true
}

// ClaimFrom takes up to count entries pending for consumer from (a worker
// that left the cluster) for consumer to, at once: XPENDING for that
// consumer, then XCLAIM with no minimum idle time. Entries another
// survivor claimed first are simply not returned. PostgreSQL still decides
// whether the run behind each entry may be taken over.
func (q *Queue) ClaimFrom(ctx context.Context, from, to string, count int) ([]Entry, error) {
	if count <= 0 || from == "" || from == to {
		return nil, nil
	}
	pend, err := q.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: q.stream, Group: q.group, Consumer: from, Start: "-", End: "+", Count: int64(count),
	}).Result()
	if err != nil {
		if strings.Contains(err.Error(), "NOGROUP") {
			return nil, nil
		}
		return nil, fmt.Errorf("pending entries of %s: %w", from, err)
	}
	if len(pend) == 0 {
		return nil, nil
	}
	ids := make([]string, len(pend))
	for i, p := range pend {
		ids[i] = p.ID
	}
	msgs, err := q.rdb.XClaim(ctx, &redis.XClaimArgs{
		Stream: q.stream, Group: q.group, Consumer: to, MinIdle: 0, Messages: ids,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("claim entries of %s: %w", from, err)
	}
	out := make([]Entry, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, toEntry(m))
	}
	return out, nil
}
