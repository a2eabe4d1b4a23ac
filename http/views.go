package http

import (
	"encoding/json"
	"slices"

	"github.com/saveaction/runner/persistence"
)

// runView is a run as the API shows it: every field but the secrets
// (variable values) and the worker's internals (lease, actor address).
type runView struct {
	ID                string          `json:"id"`
	RecordingID       string          `json:"recordingId"`
	RecordingName     string          `json:"recordingName"`
	RecordingURL      string          `json:"recordingUrl"`
	Status            string          `json:"status"`
	Browser           string          `json:"browser"`
	Headless          bool            `json:"headless"`
	Options           json.RawMessage `json:"options"`
	Variables         []string        `json:"variables"`
	ActionsTotal      int             `json:"actionsTotal"`
	ActionsExecuted   int             `json:"actionsExecuted"`
	ActionsFailed     int             `json:"actionsFailed"`
	ActionsSkipped    int             `json:"actionsSkipped"`
	DurationMs        *int64          `json:"durationMs"`
	StartedAt         *string         `json:"startedAt"`
	CompletedAt       *string         `json:"completedAt"`
	ErrorMessage      *string         `json:"errorMessage"`
	ErrorActionID     *string         `json:"errorActionId"`
	Attempt           int             `json:"attempt"`
	WorkerNode        *string         `json:"workerNode"`
	TriggeredBy       string          `json:"triggeredBy"`
	CIMetadata        json.RawMessage `json:"ciMetadata"`
	RetryOf           *string         `json:"retryOf"`
	CancelRequestedAt *string         `json:"cancelRequestedAt"`
	VideoURL          *string         `json:"videoUrl"`
	Screenshots       []string        `json:"screenshots"`
	// ArtifactWarnings say which artifacts could not be stored and why;
	// ArtifactsExpiredAt when retention removed them.
	ArtifactWarnings   []string `json:"artifactWarnings"`
	ArtifactsExpiredAt *string  `json:"artifactsExpiredAt"`
	CreatedAt          string   `json:"createdAt"`
	UpdatedAt          string   `json:"updatedAt"`
	// SelectorHealth is set by GET /runs/:id only (it reads the actions).
	SelectorHealth *healthSummaryView `json:"selectorHealth,omitempty"`
}

func newRunView(r *persistence.Run) runView {
	v := runView{
		ID:                r.ID.String(),
		RecordingID:       r.RecordingID.String(),
		RecordingName:     r.RecordingName,
		RecordingURL:      r.RecordingURL,
		Status:            string(r.Status),
		Browser:           r.Browser,
		Headless:          r.Headless,
		Options:           r.Options,
		Variables:         sortedKeys(r.Variables),
		ActionsTotal:      r.ActionsTotal,
		ActionsExecuted:   r.ActionsExecuted,
		ActionsFailed:     r.ActionsFailed,
		ActionsSkipped:    r.ActionsSkipped,
		DurationMs:        r.DurationMs,
		StartedAt:         fmtTimePtr(r.StartedAt),
		CompletedAt:       fmtTimePtr(r.CompletedAt),
		ErrorMessage:      r.ErrorMessage,
		ErrorActionID:     r.ErrorActionID,
		Attempt:           r.Attempt,
		TriggeredBy:       r.TriggeredBy,
		CIMetadata:        r.CIMetadata,
		CancelRequestedAt: fmtTimePtr(r.CancelRequestedAt),
		CreatedAt:         fmtTime(r.CreatedAt),
		UpdatedAt:         fmtTime(r.UpdatedAt),
	}
	v.ArtifactWarnings, v.ArtifactsExpiredAt = r.ArtifactWarnings, fmtTimePtr(r.ArtifactsExpiredAt)
	if len(v.Options) == 0 {
		v.Options = json.RawMessage("{}")
	}
	if len(v.CIMetadata) == 0 {
		v.CIMetadata = nil
	}
	// Artifacts are API URLs, never paths on a worker's disk.
	v.Screenshots = []string{}
	for _, a := range r.Artifacts {
		if a.Status != persistence.ArtifactStored {
			continue
		}
		switch a.Kind {
		case persistence.ArtifactVideo:
			u := videoURL(v.ID)
			v.VideoURL = &u
		case persistence.ArtifactScreenshot:
			v.Screenshots = append(v.Screenshots, screenshotURL(v.ID, a.Name))
		}
	}
	if v.ArtifactWarnings == nil {
		v.ArtifactWarnings = []string{}
	}
	if r.WorkerNode != "" {
		w := r.WorkerNode
		v.WorkerNode = &w
	}
	if r.RetryOf != nil {
		s := r.RetryOf.String()
		v.RetryOf = &s
	}
	return v
}

// runCreatedView answers POST /runs and POST /runs/:id/retry.
type runCreatedView struct {
	ID            string  `json:"id"`
	RecordingID   string  `json:"recordingId"`
	RecordingName string  `json:"recordingName"`
	Status        string  `json:"status"`
	Browser       string  `json:"browser"`
	Headless      bool    `json:"headless"`
	RetryOf       *string `json:"retryOf,omitempty"`
	CreatedAt     string  `json:"createdAt"`
}

func newRunCreatedView(r *persistence.Run) runCreatedView {
	v := runCreatedView{
		ID: r.ID.String(), RecordingID: r.RecordingID.String(), RecordingName: r.RecordingName,
		Status: string(r.Status), Browser: r.Browser, Headless: r.Headless, CreatedAt: fmtTime(r.CreatedAt),
	}
	if r.RetryOf != nil {
		s := r.RetryOf.String()
		v.RetryOf = &s
	}
	return v
}

// actionView is one row of GET /runs/:id/actions.
type actionView struct {
	ActionID      string   `json:"actionId"`
	ActionType    string   `json:"actionType"`
	ActionIndex   int      `json:"actionIndex"`
	Status        string   `json:"status"`
	StartedAt     *string  `json:"startedAt"`
	CompletedAt   *string  `json:"completedAt"`
	DurationMs    *int64   `json:"durationMs"`
	SelectorUsed  *string  `json:"selectorUsed"`
	ErrorMessage  *string  `json:"errorMessage"`
	Reason        *string  `json:"reason"`
	Warnings      []string `json:"warnings"`
	ScreenshotURL *string  `json:"screenshotUrl"`
	// SelectorHealth is how the worker found the element (null when the
	// action located none or has not run).
	SelectorHealth json.RawMessage `json:"selectorHealth"`
}

func newActionView(a *persistence.RunAction) actionView {
	v := actionView{
		ActionID: a.ActionID, ActionType: a.ActionType, ActionIndex: a.ActionIndex, Status: a.Status,
		StartedAt: fmtTimePtr(a.StartedAt), CompletedAt: fmtTimePtr(a.CompletedAt), DurationMs: a.DurationMs,
		SelectorUsed: a.SelectorUsed, ErrorMessage: a.ErrorMessage, Reason: a.Reason,
		Warnings: a.Warnings,
	}
	if a.ScreenshotPath != nil {
		u := screenshotURL(a.RunID.String(), artifactBaseName(*a.ScreenshotPath))
		v.ScreenshotURL = &u
	}
	if v.Warnings == nil {
		v.Warnings = []string{}
	}
	if h := actionHealth(a); h != nil {
		v.SelectorHealth = h
	}
	return v
}

// actionMetadata is what the worker keeps in a run_actions row's metadata.
type actionMetadata struct {
	SelectorHealth json.RawMessage `json:"selectorHealth"`
}

// actionHealth is the row's selector health as the worker stored it, or
// nil.
func actionHealth(a *persistence.RunAction) json.RawMessage {
	if len(a.Metadata) == 0 {
		return nil
	}
	var m actionMetadata
	if json.Unmarshal(a.Metadata, &m) != nil || len(m.SelectorHealth) == 0 || string(m.SelectorHealth) == "null" {
		return nil
	}
	return m.SelectorHealth
}

// healthSummaryView sums up a run's selector health: how many located
// actions were found by their primary strategy, by a fallback or not at
// all, and which have a stale (no longer matching) or ambiguous (matching
// several elements) primary selector.
type healthSummaryView struct {
	Located   int              `json:"located"`
	Primary   int              `json:"primary"`
	Fallback  int              `json:"fallback"`
	NotFound  int              `json:"notFound"`
	Stale     []healthNoteView `json:"stale"`
	Ambiguous []healthNoteView `json:"ambiguous"`
}

type healthNoteView struct {
	ActionID string `json:"actionId"`
	Index    int    `json:"index"`
	Primary  string `json:"primary"`
	Strategy string `json:"strategy"`
}

// newHealthSummary sums the selector health of a run's action rows.
func newHealthSummary(rows []persistence.RunAction) *healthSummaryView {
	sum := &healthSummaryView{Stale: []healthNoteView{}, Ambiguous: []healthNoteView{}}
	for i := range rows {
		raw := actionHealth(&rows[i])
		if raw == nil {
			continue
		}
		var h struct {
			Primary   string `json:"primary"`
			Strategy  string `json:"strategy"`
			Position  int    `json:"position"`
			Stale     bool   `json:"stale"`
			Ambiguous bool   `json:"ambiguous"`
		}
		if json.Unmarshal(raw, &h) != nil {
			continue
		}
		sum.Located++
		switch {
		case h.Position == 0:
			sum.Primary++
		case h.Position > 0:
			sum.Fallback++
		default:
			sum.NotFound++
		}
		note := healthNoteView{ActionID: rows[i].ActionID, Index: rows[i].ActionIndex, Primary: h.Primary, Strategy: h.Strategy}
		if h.Stale {
			sum.Stale = append(sum.Stale, note)
		}
		if h.Ambiguous {
			sum.Ambiguous = append(sum.Ambiguous, note)
		}
	}
	return sum
}

// recordingView is a recording as the API shows it; Data only on GET of one.
type recordingView struct {
	ID                  string          `json:"id"`
	OriginalID          string          `json:"originalId"`
	Name                string          `json:"name"`
	URL                 string          `json:"url"`
	Description         string          `json:"description"`
	Tags                []string        `json:"tags"`
	ActionCount         int             `json:"actionCount"`
	EstimatedDurationMs int64           `json:"estimatedDurationMs"`
	SchemaVersion       string          `json:"schemaVersion"`
	DataSizeBytes       int             `json:"dataSizeBytes"`
	Variables           []string        `json:"variables"`
	Warnings            []string        `json:"warnings,omitempty"`
	Data                json.RawMessage `json:"data,omitempty"`
	CreatedAt           string          `json:"createdAt"`
	UpdatedAt           string          `json:"updatedAt"`
}

func newRecordingView(r *persistence.Recording, withData bool) recordingView {
	v := recordingView{
		ID: r.ID.String(), OriginalID: r.OriginalID, Name: r.Name, URL: r.URL, Description: r.Description,
		Tags: r.Tags, ActionCount: r.ActionCount, EstimatedDurationMs: r.EstimatedDurationMs,
		SchemaVersion: r.SchemaVersion, DataSizeBytes: r.DataSizeBytes, Variables: r.Variables,
		CreatedAt: fmtTime(r.CreatedAt), UpdatedAt: fmtTime(r.UpdatedAt),
	}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	if v.Variables == nil {
		v.Variables = []string{}
	}
	if withData {
		v.Data = r.Data
	}
	return v
}

// tokenView is a token without its secret; Token is set only on creation.
type tokenView struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Token       string   `json:"token,omitempty"`
	Scopes      []string `json:"scopes"`
	TokenPrefix string   `json:"tokenPrefix"`
	TokenSuffix string   `json:"tokenSuffix"`
	ExpiresAt   *string  `json:"expiresAt"`
	LastUsedAt  *string  `json:"lastUsedAt"`
	RevokedAt   *string  `json:"revokedAt"`
	CreatedAt   string   `json:"createdAt"`
}

func newTokenView(t *persistence.APIToken) tokenView {
	return tokenView{
		ID: t.ID.String(), Name: t.Name, Scopes: slices.Clone(t.Scopes),
		TokenPrefix: t.TokenPrefix, TokenSuffix: t.TokenSuffix,
		ExpiresAt: fmtTimePtr(t.ExpiresAt), LastUsedAt: fmtTimePtr(t.LastUsedAt),
		RevokedAt: fmtTimePtr(t.RevokedAt), CreatedAt: fmtTime(t.CreatedAt),
	}
}
