package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/robfig/cron/v3"

	"github.com/saveaction/runner/artifacts"
	"github.com/saveaction/runner/persistence"
)

// Retention defaults (ARTIFACT_RETENTION_DAYS, RETENTION_SCHEDULE).
const (
	DefaultRetentionDays     = 30
	DefaultRetentionSchedule = "0 3 * * *" // daily at 03:00 UTC
	// orphanGrace leaves alone files younger than this whose run is
	// missing: a run being created or deleted right now.
	orphanGrace = time.Hour
	// retentionLockTTL outlives one pass; the holder releases it when done.
	retentionLockTTL = 30 * time.Minute
)

// ParseSchedule reads a five-field cron expression (RETENTION_SCHEDULE),
// in UTC unless it names a zone (CRON_TZ=...).
func ParseSchedule(spec string) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if !strings.HasPrefix(spec, "CRON_TZ=") && !strings.HasPrefix(spec, "TZ=") {
		spec = "CRON_TZ=UTC " + spec
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("cron schedule %q: %w", spec, err)
	}
	return s, nil
}

// Retention removes the artifacts of runs finished longer ago than MaxAge
// and files no live run owns (orphans), and records on each run what
// expired and when, so the API answers 410. One node at a time runs a
// pass, under a Redis lock; a pass is idempotent, so an overlap when the
// lock moves does no harm.
type Retention struct {
	Runs  *persistence.Runs
	Store artifacts.Store
	// Redis holds the lock; nil runs without one (a single node).
	Redis   redis.UniversalClient
	LockKey string // e.g. "sa:retention:lock"
	Owner   string // this node's name, the lock's value
	// MaxAge is how long after a run finishes its artifacts are kept; 0
	// keeps them forever (orphans are still removed).
	MaxAge time.Duration
	// Schedule says when Run makes a pass (default DefaultRetentionSchedule).
	Schedule cron.Schedule
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log *slog.Logger
	// Page is how many runs one query reads (default 200).
	Page int
}

// RetentionReport says what one pass removed (or, dry, would remove).
type RetentionReport struct {
	Runs        int      // runs whose artifacts expired
	Files       int      // files removed, orphans included
	Bytes       int64    // their size
	Orphans     int      // of Files, those no live run owned
	Keys        []string // every key removed
	Failed      int      // deletes that failed (retried next pass)
	Skipped     bool     // another node holds the lock
	DryRun      bool
	OlderThan   time.Duration
	CompletedAt time.Time
}

func (r *Retention) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

// Run makes a pass at every time of the schedule until ctx ends.
func (r *Retention) Run(ctx context.Context) {
	sched := r.Schedule
	if sched == nil {
		var err error
		if sched, err = ParseSchedule(DefaultRetentionSchedule); err != nil {
			panic(err) // the default is a constant
		}
	}
	for {
		next := sched.Next(r.now())
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		age := r.MaxAge
		if age <= 0 {
			age = -1 // keep forever: orphans only
		}
		rep, err := r.Once(ctx, age, false)
		switch {
		case err != nil && ctx.Err() == nil:
			r.Log.Warn("artifact retention", "error", err)
		case err == nil && !rep.Skipped:
			r.Log.Info("artifact retention pass", "runs", rep.Runs, "files", rep.Files, "bytes", rep.Bytes, "orphans", rep.Orphans, "failed", rep.Failed)
		}
	}
}

// releaseScript drops the lock only when it is still ours.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Once makes one pass now: the artifacts of runs finished more than
// olderThan ago (none when olderThan < 0), then orphans. dryRun reports
// what would go without removing anything.
func (r *Retention) Once(ctx context.Context, olderThan time.Duration, dryRun bool) (RetentionReport, error) {
	rep := RetentionReport{DryRun: dryRun, OlderThan: olderThan}
	if r.Redis != nil && !dryRun {
		ok, err := lockScript.Run(ctx, r.Redis, []string{r.LockKey}, r.Owner, retentionLockTTL.Milliseconds()).Int()
		if err != nil {
			return rep, fmt.Errorf("take retention lock: %w", err)
		}
		if ok != 1 {
			rep.Skipped = true
			return rep, nil
		}
		defer func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = releaseScript.Run(rctx, r.Redis, []string{r.LockKey}, r.Owner).Err()
		}()
	}
	if olderThan >= 0 {
		if err := r.expire(ctx, olderThan, dryRun, &rep); err != nil {
			return rep, err
		}
	}
	if err := r.sweepOrphans(ctx, dryRun, &rep); err != nil {
		return rep, err
	}
	rep.CompletedAt = r.now()
	return rep, nil
}

// expire removes the files of runs finished before now-olderThan and marks
// their artifacts expired.
func (r *Retention) expire(ctx context.Context, olderThan time.Duration, dryRun bool, rep *RetentionReport) error {
	page := r.Page
	if page <= 0 {
		page = 200
	}
	before := r.now().Add(-olderThan)
	var c persistence.Cursor
	for {
		runs, err := r.Runs.WithArtifactsBefore(ctx, before, c, page)
		if err != nil {
			return err
		}
		for i := range runs {
			if err := r.expireRun(ctx, &runs[i], dryRun, rep); err != nil {
				return err
			}
		}
		if len(runs) < page {
			return nil
		}
		last := runs[len(runs)-1]
		c = persistence.Cursor{At: *last.CompletedAt, ID: last.ID}
	}
}

func (r *Retention) expireRun(ctx context.Context, run *persistence.Run, dryRun bool, rep *RetentionReport) error {
	now := r.now()
	failed := false
	for i := range run.Artifacts {
		a := &run.Artifacts[i]
		if a.Status != persistence.ArtifactStored {
			continue
		}
		info, err := r.Store.Stat(ctx, a.Key)
		size := a.Size
		if err == nil {
			size = info.Size
		} else if !errors.Is(err, artifacts.ErrNotFound) {
			r.Log.Warn("retention: stat artifact", "worker", r.Owner, "jobId", run.JobID, "runId", run.ID.String(), "key", a.Key, "error", err)
			rep.Failed++
			failed = true
			continue
		}
		if !dryRun && err == nil {
			if err := r.Store.Delete(ctx, a.Key); err != nil {
				r.Log.Warn("retention: delete artifact", "worker", r.Owner, "jobId", run.JobID, "runId", run.ID.String(), "key", a.Key, "error", err)
				rep.Failed++
				failed = true
				continue
			}
		}
		if err == nil {
			rep.Files++
			rep.Bytes += size
			rep.Keys = append(rep.Keys, a.Key)
		}
		a.Status, a.ExpiredAt = persistence.ArtifactExpired, &now
	}
	rep.Runs++
	if dryRun || failed {
		// A run with a file left keeps its record as stored: the next pass
		// tries again.
		return nil
	}
	return r.Runs.MarkArtifacts(ctx, run.ID, run.Artifacts, &now)
}

// sweepOrphans removes files under runs/ whose run does not exist or was
// deleted, once they are older than orphanGrace.
func (r *Retention) sweepOrphans(ctx context.Context, dryRun bool, rep *RetentionReport) error {
	byRun := map[uuid.UUID][]artifacts.Info{}
	cutoff := r.now().Add(-orphanGrace)
	err := r.Store.List(ctx, "runs/", func(i artifacts.Info) error {
		id, err := uuid.Parse(artifacts.RunOfKey(i.Key))
		if err != nil || i.ModTime.After(cutoff) {
			return nil
		}
		byRun[id] = append(byRun[id], i)
		return nil
	})
	if err != nil {
		return err
	}
	ids := make([]uuid.UUID, 0, len(byRun))
	for id := range byRun {
		ids = append(ids, id)
	}
	for len(ids) > 0 {
		batch := ids[:min(len(ids), 500)]
		ids = ids[len(batch):]
		live, err := r.Runs.LiveRunIDs(ctx, batch)
		if err != nil {
			return err
		}
		for _, id := range batch {
			if live[id] {
				continue
			}
			for _, i := range byRun[id] {
				if !dryRun {
					if err := r.Store.Delete(ctx, i.Key); err != nil {
						r.Log.Warn("retention: delete orphan", "key", i.Key, "error", err)
						rep.Failed++
						continue
					}
				}
				rep.Files++
				rep.Orphans++
				rep.Bytes += i.Size
				rep.Keys = append(rep.Keys, i.Key)
			}
		}
	}
	return nil
}
