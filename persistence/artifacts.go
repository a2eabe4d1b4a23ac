package persistence

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// Artifact kinds.
const (
	ArtifactVideo      = "video"
	ArtifactScreenshot = "screenshot"
)

// Artifact states.
const (
	// ArtifactStored: the file is in the artifact store under Key.
	ArtifactStored = "stored"
	// ArtifactFailed: the file could not be stored; Error says why.
	ArtifactFailed = "failed"
	// ArtifactExpired: retention removed it at ExpiredAt.
	ArtifactExpired = "expired"
	// ArtifactDeleted: removed with its run (DELETE /runs/:id).
	ArtifactDeleted = "deleted"
)

// Artifact is one file of a run, as kept in runs.artifacts. The run keeps
// the record after the file is gone, so the API can say when it went.
type Artifact struct {
	Kind        string     `json:"kind"`
	Key         string     `json:"key,omitempty"`
	Name        string     `json:"name"`
	ActionID    string     `json:"actionId,omitempty"`
	ActionIndex *int       `json:"actionIndex,omitempty"`
	ContentType string     `json:"contentType"`
	Size        int64      `json:"size"`
	TakenAt     time.Time  `json:"takenAt"`
	Status      string     `json:"status"`
	Error       string     `json:"error,omitempty"`
	ExpiredAt   *time.Time `json:"expiredAt,omitempty"`
}

// writeArtifacts records a finishing attempt's artifacts on its run and
// points each action row at its screenshot's key (or at none when the
// upload failed): rows written during the replay carry the worker's path.
func writeArtifacts(ctx context.Context, tx bun.Tx, id uuid.UUID, o Outcome, now time.Time) error {
	if o.Artifacts == nil {
		return nil
	}
	warnings := o.ArtifactWarnings
	if warnings == nil {
		warnings = []string{}
	}
	arts, err := json.Marshal(o.Artifacts)
	if err != nil {
		return fmt.Errorf("encode artifacts of run %s: %w", id, err)
	}
	_, err = tx.NewUpdate().Model((*Run)(nil)).
		Set("artifacts = ?::jsonb", string(arts)).
		Set("artifact_warnings = ?::jsonb", mustJSON(warnings)).
		Where("id = ?", id).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("record artifacts of run %s: %w", id, err)
	}
	for _, a := range o.Artifacts {
		if a.Kind != ArtifactScreenshot || a.ActionIndex == nil {
			continue
		}
		var key *string
		if a.Status == ArtifactStored {
			key = &a.Key
		}
		_, err := tx.NewUpdate().Model((*RunAction)(nil)).
			Set("screenshot_path = ?", key).
			Set("updated_at = ?", now).
			Where("run_id = ?", id).
			Where("action_index = ?", *a.ActionIndex).
			Exec(ctx)
		if err != nil {
			return fmt.Errorf("point action %d of run %s at its screenshot: %w", *a.ActionIndex, id, err)
		}
	}
	return nil
}

// WithArtifactsBefore lists finished runs (deleted or not) that completed
// before `before` and still hold artifacts, after cursor c, oldest first:
// the retention pass walks them.
func (s *Runs) WithArtifactsBefore(ctx context.Context, before time.Time, c Cursor, limit int) ([]Run, error) {
	var runs []Run
	err := s.DB.NewSelect().Model(&runs).
		Where("artifacts_expired_at IS NULL").
		Where("artifacts <> '[]'::jsonb").
		Where("completed_at < ?", before).
		Where("(completed_at, id) > (?, ?)", c.At, c.ID).
		OrderExpr("completed_at, id").
		Limit(int64(limit)).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list runs with artifacts: %w", err)
	}
	return runs, nil
}

// MarkArtifacts records the run's artifacts as they now are (expired or
// deleted, with when); expiredAt, when set, is the run's expiry time.
func (s *Runs) MarkArtifacts(ctx context.Context, id uuid.UUID, arts []Artifact, expiredAt *time.Time) error {
	b, err := json.Marshal(arts)
	if err != nil {
		return fmt.Errorf("encode artifacts of run %s: %w", id, err)
	}
	q := s.DB.NewUpdate().Model((*Run)(nil)).
		Set("artifacts = ?::jsonb", string(b)).
		Where("id = ?", id)
	if expiredAt != nil {
		q = q.Set("artifacts_expired_at = ?", expiredAt.UTC())
	}
	if _, err := q.Exec(ctx); err != nil {
		return fmt.Errorf("mark artifacts of run %s: %w", id, err)
	}
	return nil
}

// LiveRunIDs returns which of ids are runs that exist and are not deleted:
// an artifact of any other id is an orphan.
func (s *Runs) LiveRunIDs(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	live := map[uuid.UUID]bool{}
	if len(ids) == 0 {
		return live, nil
	}
	var found []uuid.UUID
	err := s.DB.NewSelect().Model((*Run)(nil)).Column("id").
		Where("id IN (?)", bun.List(ids)).
		Where("deleted_at IS NULL").
		Scan(ctx, &found)
	if err != nil {
		return nil, fmt.Errorf("look up runs: %w", err)
	}
	for _, id := range found {
		live[id] = true
	}
	return live, nil
}
