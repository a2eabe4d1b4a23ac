package persistence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// ErrRecordingNotFound means the caller has no live recording with that id:
// it never existed, was soft-deleted, or belongs to someone else.
var ErrRecordingNotFound = errors.New("recording not found")

// DuplicateOriginalIDError means the user already has a live recording with
// the same recorder id; ExistingID is that recording.
type DuplicateOriginalIDError struct {
	OriginalID string
	ExistingID uuid.UUID
}

func (e *DuplicateOriginalIDError) Error() string {
	return fmt.Sprintf("a recording with id %q already exists (%s)", e.OriginalID, e.ExistingID)
}

// Sort keys of ListRecordings.
const (
	RecordingSortName        = "name"
	RecordingSortCreatedAt   = "createdAt"
	RecordingSortUpdatedAt   = "updatedAt"
	RecordingSortActionCount = "actionCount"
)

// RecordingSortKeys lists the sort keys ListRecordings accepts.
func RecordingSortKeys() []string {
	return []string{RecordingSortName, RecordingSortCreatedAt, RecordingSortUpdatedAt, RecordingSortActionCount}
}

func recordingSortColumn(key string) (string, bool) {
	switch key {
	case RecordingSortName:
		return "name", true
	case RecordingSortCreatedAt, "":
		return "created_at", true
	case RecordingSortUpdatedAt:
		return "updated_at", true
	case RecordingSortActionCount:
		return "action_count", true
	}
	return "", false
}

// RecordingQuery selects a page of a user's recordings.
type RecordingQuery struct {
	UserID uuid.UUID
	Limit  int
	Offset int
	// Search matches, case-insensitively, a substring of the name,
	// description, recorder id or URL.
	Search string
	// Tags keeps recordings that carry every one of them.
	Tags []string
	// SortBy is one of RecordingSortKeys (default createdAt); ties are
	// broken by id in the same direction so pages never overlap.
	SortBy string
	Asc    bool
}

// CreateRecording inserts rec (ID, timestamps are filled in). A live
// recording of the same user with the same OriginalID is a
// *DuplicateOriginalIDError.
func CreateRecording(ctx context.Context, db bun.IDB, rec *Recording) error {
	if id, err := liveRecordingByOriginalID(ctx, db, rec.UserID, rec.OriginalID, uuid.Nil); err != nil {
		return err
	} else if id != uuid.Nil {
		return &DuplicateOriginalIDError{OriginalID: rec.OriginalID, ExistingID: id}
	}
	rec.Version = 1
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(rec).Returning("*").Exec(ctx); err != nil {
			return err
		}
		return insertVersion(ctx, tx, rec)
	})
	if uniqueViolationOn(err, "recordings_user_original_key") {
		// Lost a race with a concurrent upload of the same recording.
		if id, lerr := liveRecordingByOriginalID(ctx, db, rec.UserID, rec.OriginalID, uuid.Nil); lerr == nil && id != uuid.Nil {
			return &DuplicateOriginalIDError{OriginalID: rec.OriginalID, ExistingID: id}
		}
	}
	if err != nil {
		return fmt.Errorf("insert recording %q: %w", rec.OriginalID, err)
	}
	return nil
}

// liveRecordingByOriginalID returns the id of userID's live recording with
// originalID other than except, or uuid.Nil.
func liveRecordingByOriginalID(ctx context.Context, db bun.IDB, userID uuid.UUID, originalID string, except uuid.UUID) (uuid.UUID, error) {
	var id uuid.UUID
	err := db.NewSelect().Model((*Recording)(nil)).Column("id").
		Where("user_id = ?", userID).
		Where("original_id = ?", originalID).
		Where("deleted_at IS NULL").
		Where("id <> ?", except).
		Limit(1).
		Scan(ctx, &id)
	if errors.Is(err, sql.ErrNoRows) {
		return uuid.Nil, nil
	}
	if err != nil {
		return uuid.Nil, fmt.Errorf("look up recording %q: %w", originalID, err)
	}
	return id, nil
}

// GetRecording loads userID's live recording id; withData also loads the
// recorder JSON.
func GetRecording(ctx context.Context, db bun.IDB, userID, id uuid.UUID, withData bool) (*Recording, error) {
	rec := new(Recording)
	q := db.NewSelect().Model(rec).
		Where("id = ?", id).
		Where("user_id = ?", userID).
		Where("deleted_at IS NULL")
	if !withData {
		q = q.ExcludeColumn("data")
	}
	err := q.Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrRecordingNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load recording %s: %w", id, err)
	}
	return rec, nil
}

// ListRecordings returns a page of recordings (without their data) and the
// number of recordings matching q.
func ListRecordings(ctx context.Context, db bun.IDB, q RecordingQuery) ([]Recording, int, error) {
	col, ok := recordingSortColumn(q.SortBy)
	if !ok {
		return nil, 0, fmt.Errorf("list recordings: unknown sort key %q", q.SortBy)
	}
	dir := "DESC"
	if q.Asc {
		dir = "ASC"
	}
	var recs []Recording
	sel := db.NewSelect().Model(&recs).ExcludeColumn("data").
		Where("user_id = ?", q.UserID).
		Where("deleted_at IS NULL")
	if q.Search != "" {
		pat := "%" + escapeLike(q.Search) + "%"
		sel = sel.WhereGroup(" AND ", func(s *bun.SelectQuery) *bun.SelectQuery {
			return s.Where(`name ILIKE ? ESCAPE '\'`, pat).
				WhereOr(`description ILIKE ? ESCAPE '\'`, pat).
				WhereOr(`original_id ILIKE ? ESCAPE '\'`, pat).
				WhereOr(`url ILIKE ? ESCAPE '\'`, pat)
		})
	}
	if len(q.Tags) > 0 {
		sel = sel.Where("tags @> ?", pgdialect.Array(q.Tags))
	}
	total, err := sel.
		OrderExpr(col + " " + dir + ", id " + dir).
		Limit(int64(q.Limit)).Offset(int64(q.Offset)).
		ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list recordings: %w", err)
	}
	return recs, int(total), nil
}

// UpdateRecording writes the editable fields of rec (name, description,
// tags, data and what is derived from it) to userID's live recording rec.ID
// and reloads rec. A change of OriginalID that collides with another live
// recording is a *DuplicateOriginalIDError.
func UpdateRecording(ctx context.Context, db bun.IDB, rec *Recording, now time.Time) error {
	if id, err := liveRecordingByOriginalID(ctx, db, rec.UserID, rec.OriginalID, rec.ID); err != nil {
		return err
	} else if id != uuid.Nil {
		return &DuplicateOriginalIDError{OriginalID: rec.OriginalID, ExistingID: id}
	}
	rec.UpdatedAt = now
	var res sql.Result
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		res, err = tx.NewUpdate().Model(rec).
			Column("original_id", "name", "description", "url", "tags", "data", "action_count",
				"estimated_duration_ms", "schema_version", "data_size_bytes", "variables", "updated_at").
			Set("version = version + 1").
			Where("id = ?", rec.ID).
			Where("user_id = ?", rec.UserID).
			Where("deleted_at IS NULL").
			Returning("*").
			Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		// Runs already created keep replaying the version they were made with.
		return insertVersion(ctx, tx, rec)
	})
	if uniqueViolationOn(err, "recordings_user_original_key") {
		if id, lerr := liveRecordingByOriginalID(ctx, db, rec.UserID, rec.OriginalID, rec.ID); lerr == nil && id != uuid.Nil {
			return &DuplicateOriginalIDError{OriginalID: rec.OriginalID, ExistingID: id}
		}
	}
	if err != nil {
		return fmt.Errorf("update recording %s: %w", rec.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrRecordingNotFound
	}
	return nil
}

// insertVersion keeps rec's data as its version rec.Version.
func insertVersion(ctx context.Context, tx bun.Tx, rec *Recording) error {
	v := &RecordingVersion{RecordingID: rec.ID, Version: rec.Version, Data: rec.Data, CreatedAt: rec.UpdatedAt}
	if _, err := tx.NewInsert().Model(v).Exec(ctx); err != nil {
		return fmt.Errorf("keep version %d of recording %s: %w", rec.Version, rec.ID, err)
	}
	return nil
}

// DeleteRecording soft-deletes userID's live recording id. Its runs keep
// their snapshot of its name and URL.
func DeleteRecording(ctx context.Context, db bun.IDB, userID, id uuid.UUID, now time.Time) (time.Time, error) {
	res, err := db.NewUpdate().Model((*Recording)(nil)).
		Set("deleted_at = ?", now).
		Set("updated_at = ?", now).
		Where("id = ?", id).
		Where("user_id = ?", userID).
		Where("deleted_at IS NULL").
		Exec(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("delete recording %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return time.Time{}, ErrRecordingNotFound
	}
	return now, nil
}

func uniqueViolationOn(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && (constraint == "" || pgErr.ConstraintName == constraint)
}

// escapeLike escapes the LIKE wildcards of s for use with ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
