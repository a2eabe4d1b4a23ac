package persistence

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// Action statuses (PostgreSQL enum action_status).
const (
	ActionPending = "pending"
	ActionSuccess = "success"
	ActionFailed  = "failed"
	ActionTimeout = "timeout"
	ActionSkipped = "skipped"
)

// User owns tokens, recordings and runs.
type User struct {
	bun.BaseModel `bun:"table:users"`

	ID        uuid.UUID  `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	Email     string     `bun:"email,notnull"`
	Name      string     `bun:"name,notnull"`
	CreatedAt time.Time  `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt time.Time  `bun:"updated_at,notnull,default:current_timestamp"`
	DeletedAt *time.Time `bun:"deleted_at"`
}

// APIToken is a bearer token, stored only as its SHA-256 hash.
type APIToken struct {
	bun.BaseModel `bun:"table:api_tokens"`

	ID          uuid.UUID  `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	UserID      uuid.UUID  `bun:"user_id,type:uuid,notnull"`
	Name        string     `bun:"name,notnull"`
	TokenHash   string     `bun:"token_hash,notnull"`
	TokenPrefix string     `bun:"token_prefix,notnull"`
	TokenSuffix string     `bun:"token_suffix,notnull"`
	Scopes      []string   `bun:"scopes,array"`
	ExpiresAt   *time.Time `bun:"expires_at"`
	RevokedAt   *time.Time `bun:"revoked_at"`
	LastUsedAt  *time.Time `bun:"last_used_at"`
	CreatedAt   time.Time  `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt   time.Time  `bun:"updated_at,notnull,default:current_timestamp"`
}

// Recording is an uploaded recording; Data is the recorder's JSON as uploaded.
type Recording struct {
	bun.BaseModel `bun:"table:recordings"`

	ID                  uuid.UUID       `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	UserID              uuid.UUID       `bun:"user_id,type:uuid,notnull"`
	OriginalID          string          `bun:"original_id,notnull"`
	Name                string          `bun:"name,notnull"`
	Description         string          `bun:"description,notnull"`
	URL                 string          `bun:"url,notnull"`
	Tags                []string        `bun:"tags,array"`
	Data                json.RawMessage `bun:"data,type:jsonb,notnull"`
	ActionCount         int             `bun:"action_count,notnull"`
	EstimatedDurationMs int64           `bun:"estimated_duration_ms,notnull"`
	SchemaVersion       string          `bun:"schema_version,notnull"`
	DataSizeBytes       int             `bun:"data_size_bytes,notnull"`
	Variables           []string        `bun:"variables,array"`
	// Version goes up with every change of Data; runs replay the version
	// they were created with (RecordingVersion).
	Version   int        `bun:"version,notnull,default:1"`
	CreatedAt time.Time  `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt time.Time  `bun:"updated_at,notnull,default:current_timestamp"`
	DeletedAt *time.Time `bun:"deleted_at"`
}

// Run is one execution of a recording. Status changes only through the
// compare-and-set transitions in runs_state.go.
type Run struct {
	bun.BaseModel `bun:"table:runs"`

	ID               uuid.UUID `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	UserID           uuid.UUID `bun:"user_id,type:uuid,notnull"`
	RecordingID      uuid.UUID `bun:"recording_id,type:uuid,notnull"`
	RecordingName    string    `bun:"recording_name,notnull"`
	RecordingURL     string    `bun:"recording_url,notnull"`
	RecordingVersion int       `bun:"recording_version,notnull"`
	Status           Status    `bun:"status,notnull,default:'queued'"`
	Attempt          int       `bun:"attempt,notnull"`
	// Deliveries counts failed attempts only (owner lost or crashed); a
	// hand-back does not count.
	Deliveries            int               `bun:"deliveries,notnull"`
	Browser               string            `bun:"browser,notnull,default:'chromium'"`
	Headless              bool              `bun:"headless,notnull"`
	VideoEnabled          bool              `bun:"video_enabled,notnull"`
	ScreenshotEnabled     bool              `bun:"screenshot_enabled,notnull"`
	ScreenshotMode        string            `bun:"screenshot_mode,notnull"`
	Timeout               int               `bun:"timeout,notnull"`
	TimingEnabled         bool              `bun:"timing_enabled,notnull"`
	TimingMode            string            `bun:"timing_mode,notnull"`
	SpeedMultiplier       float64           `bun:"speed_multiplier,notnull"`
	ContinueOnError       bool              `bun:"continue_on_error,notnull"`
	AssertAutoCheckpoints bool              `bun:"assert_auto_checkpoints,notnull"`
	Options               json.RawMessage   `bun:"options,type:jsonb,notnull"`
	Variables             map[string]string `bun:"variables,type:jsonb,notnull"`
	QueueName             string            `bun:"queue_name,notnull"`
	JobID                 string            `bun:"job_id,notnull"`
	WorkerNode            string            `bun:"worker_node,notnull"`
	ActorAddress          string            `bun:"actor_address,notnull"`
	ActorID               string            `bun:"actor_id,notnull"`
	LeaseExpiresAt        *time.Time        `bun:"lease_expires_at"`
	// LeaseExpired is read with the run (Runs.Get): no lease, or one that
	// ended by the database's clock.
	LeaseExpired      bool            `bun:"lease_expired,scanonly"`
	CancelRequestedAt *time.Time      `bun:"cancel_requested_at"`
	RetryOf           *uuid.UUID      `bun:"retry_of,type:uuid"`
	IdempotencyKey    *string         `bun:"idempotency_key"`
	TriggeredBy       string          `bun:"triggered_by,notnull,default:'api'"`
	CIMetadata        json.RawMessage `bun:"ci_metadata,type:jsonb"`
	ActionsTotal      int             `bun:"actions_total,notnull"`
	ActionsExecuted   int             `bun:"actions_executed,notnull"`
	ActionsFailed     int             `bun:"actions_failed,notnull"`
	ActionsSkipped    int             `bun:"actions_skipped,notnull"`
	DurationMs        *int64          `bun:"duration_ms"`
	StartedAt         *time.Time      `bun:"started_at"`
	CompletedAt       *time.Time      `bun:"completed_at"`
	ErrorMessage      *string         `bun:"error_message"`
	ErrorActionID     *string         `bun:"error_action_id"`
	VideoPath         *string         `bun:"video_path"`
	ScreenshotPaths   []string        `bun:"screenshot_paths,type:jsonb,notnull"`
	// Artifacts are the run's files in the artifact store (artifacts.go).
	Artifacts []Artifact `bun:"artifacts,type:jsonb,nullzero,notnull,default:'[]'"`
	// ArtifactWarnings say which artifacts could not be stored and why.
	ArtifactWarnings []string `bun:"artifact_warnings,type:jsonb,nullzero,notnull,default:'[]'"`
	// ArtifactsExpiredAt is when retention removed the run's files.
	ArtifactsExpiredAt *time.Time `bun:"artifacts_expired_at"`
	CreatedAt          time.Time  `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt          time.Time  `bun:"updated_at,notnull,default:current_timestamp"`
	DeletedAt          *time.Time `bun:"deleted_at"`
}

// RunAction is the result of one action of a run, keyed by (run_id, action_index).
type RunAction struct {
	bun.BaseModel `bun:"table:run_actions"`

	ID             uuid.UUID       `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	RunID          uuid.UUID       `bun:"run_id,type:uuid,notnull"`
	Attempt        int             `bun:"attempt,notnull"`
	ActionID       string          `bun:"action_id,notnull"`
	ActionIndex    int             `bun:"action_index,notnull"`
	ActionType     string          `bun:"action_type,notnull"`
	Status         string          `bun:"status,notnull,default:'pending'"`
	StartedAt      *time.Time      `bun:"started_at"`
	CompletedAt    *time.Time      `bun:"completed_at"`
	DurationMs     *int64          `bun:"duration_ms"`
	SelectorUsed   *string         `bun:"selector_used"`
	ErrorMessage   *string         `bun:"error_message"`
	Reason         *string         `bun:"reason"`
	Warnings       []string        `bun:"warnings,type:jsonb,notnull"`
	ScreenshotPath *string         `bun:"screenshot_path"`
	Metadata       json.RawMessage `bun:"metadata,type:jsonb"`
	CreatedAt      time.Time       `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt      time.Time       `bun:"updated_at,notnull,default:current_timestamp"`
}

// RecordingVersion keeps every version of a recording's data, so a run
// replays what it was created with whatever happens to the recording.
type RecordingVersion struct {
	bun.BaseModel `bun:"table:recording_versions"`

	RecordingID uuid.UUID       `bun:"recording_id,pk,type:uuid"`
	Version     int             `bun:"version,pk"`
	Data        json.RawMessage `bun:"data,type:jsonb,notnull"`
	CreatedAt   time.Time       `bun:"created_at,notnull,default:current_timestamp"`
}
