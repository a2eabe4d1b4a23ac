package persistence

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// Token scopes. GET requests need the read scope of their resource, every
// other method the write/execute scope (API.md, Auth).
const (
	ScopeRecordingsRead  = "recordings:read"
	ScopeRecordingsWrite = "recordings:write"
	ScopeRunsRead        = "runs:read"
	ScopeRunsExecute     = "runs:execute"
	ScopeTokensManage    = "tokens:manage"
	// The fleet scopes (GET /workers, drain and resume) are never given by
	// default: an operator asks for them with token create --scopes.
	ScopeWorkersRead   = "workers:read"
	ScopeWorkersManage = "workers:manage"
)

// AllScopes lists every scope, in display order. Treat it as read-only;
// ParseScopes hands out copies.
var AllScopes = []string{ScopeRecordingsRead, ScopeRecordingsWrite, ScopeRunsRead, ScopeRunsExecute, ScopeTokensManage}

// FleetScopes are valid but, unlike AllScopes, never granted by default.
var FleetScopes = []string{ScopeWorkersRead, ScopeWorkersManage}

// KnownScopes lists every valid scope: AllScopes, then FleetScopes.
func KnownScopes() []string { return slices.Concat(AllScopes, FleetScopes) }

// Token format: TokenPrefix followed by tokenHexLen lowercase hex digits.
const (
	TokenPrefix    = "sa_live_"
	tokenHexLen    = 64
	displayHexLen  = 8 // hex digits kept after TokenPrefix for display
	displaySuffix  = 4 // last characters kept for display
	lastUsedGrain  = time.Minute
	maxTokenName   = 100
	tokenRandBytes = tokenHexLen / 2
)

// ErrTokenNotFound means the caller has no token with that id.
var ErrTokenNotFound = errors.New("token not found")

// ErrTokenInvalid means a presented bearer token is malformed, unknown,
// revoked or expired, or belongs to a deleted user. Callers answer 401 and
// do not say which.
var ErrTokenInvalid = errors.New("invalid token")

// IsValidScope reports whether s is one of KnownScopes.
func IsValidScope(s string) bool {
	return slices.Contains(AllScopes, s) || slices.Contains(FleetScopes, s)
}

// ParseScopes reads a comma-separated scope list ("runs:read,runs:execute").
// Spaces around names are ignored and repeats dropped; an unknown name is an
// error naming it. An empty list means AllScopes (never the fleet scopes).
func ParseScopes(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !IsValidScope(part) {
			return nil, fmt.Errorf("unknown scope %q (valid: %s)", part, strings.Join(KnownScopes(), ", "))
		}
		if !slices.Contains(out, part) {
			out = append(out, part)
		}
	}
	if len(out) == 0 {
		return slices.Clone(AllScopes), nil
	}
	return out, nil
}

// HashToken returns the hex SHA-256 of a plaintext token, as stored.
func HashToken(plaintext string) string {
	sum := sha256.Sum256([]byte(plaintext))
	return hex.EncodeToString(sum[:])
}

// WellFormedToken reports whether s has the shape sa_live_<64 lowercase hex>.
func WellFormedToken(s string) bool {
	if len(s) != len(TokenPrefix)+tokenHexLen || !strings.HasPrefix(s, TokenPrefix) {
		return false
	}
	for _, c := range s[len(TokenPrefix):] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// CreateToken makes a new token for userID and returns its plaintext, which
// is never stored and cannot be shown again. scopes must be valid and
// non-empty; expiresAt, when set, must be in the future.
func CreateToken(ctx context.Context, db bun.IDB, userID uuid.UUID, name string, scopes []string, expiresAt *time.Time) (plaintext string, tok *APIToken, err error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxTokenName {
		return "", nil, fmt.Errorf("create token: name must be 1-%d characters", maxTokenName)
	}
	if len(scopes) == 0 {
		return "", nil, errors.New("create token: no scopes")
	}
	for _, s := range scopes {
		if !IsValidScope(s) {
			return "", nil, fmt.Errorf("create token: unknown scope %q", s)
		}
	}
	if expiresAt != nil && !expiresAt.After(time.Now()) {
		return "", nil, errors.New("create token: expiry is in the past")
	}
	var raw [tokenRandBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", nil, fmt.Errorf("create token: random: %w", err)
	}
	plaintext = TokenPrefix + hex.EncodeToString(raw[:])
	tok = &APIToken{
		UserID:      userID,
		Name:        name,
		TokenHash:   HashToken(plaintext),
		TokenPrefix: plaintext[:len(TokenPrefix)+displayHexLen],
		TokenSuffix: plaintext[len(plaintext)-displaySuffix:],
		Scopes:      slices.Clone(scopes),
	}
	if expiresAt != nil {
		t := expiresAt.UTC().Truncate(time.Microsecond)
		tok.ExpiresAt = &t
	}
	if _, err := db.NewInsert().Model(tok).Returning("*").Exec(ctx); err != nil {
		return "", nil, fmt.Errorf("create token for user %s: %w", userID, err)
	}
	return plaintext, tok, nil
}

// AuthenticateToken finds the live token whose plaintext is given: not
// revoked, not expired at now, its user not deleted. Anything else is
// ErrTokenInvalid. It records last use at most once a minute per token so
// that authentication stays a read on the hot path.
func AuthenticateToken(ctx context.Context, db bun.IDB, plaintext string, now time.Time) (*APIToken, error) {
	if !WellFormedToken(plaintext) {
		return nil, ErrTokenInvalid
	}
	now = now.UTC().Truncate(time.Microsecond) // what PostgreSQL keeps
	tok := new(APIToken)
	err := db.NewSelect().Model(tok).
		Where("token_hash = ?", HashToken(plaintext)).
		Where("revoked_at IS NULL").
		Where("expires_at IS NULL OR expires_at > ?", now).
		Where("EXISTS (SELECT 1 FROM users u WHERE u.id = api_token.user_id AND u.deleted_at IS NULL)").
		Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrTokenInvalid
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate token: %w", err)
	}
	if tok.LastUsedAt == nil || now.Sub(*tok.LastUsedAt) >= lastUsedGrain {
		_, err := db.NewUpdate().Model((*APIToken)(nil)).
			Set("last_used_at = ?", now).
			Where("id = ?", tok.ID).
			Where("last_used_at IS NULL OR last_used_at < ?", now.Add(-lastUsedGrain)).
			Exec(ctx)
		if err != nil {
			return nil, fmt.Errorf("record use of token %s: %w", tok.ID, err)
		}
		tok.LastUsedAt = &now
	}
	return tok, nil
}

// ListTokens returns a page of userID's tokens, newest first, and their total.
func ListTokens(ctx context.Context, db bun.IDB, userID uuid.UUID, limit, offset int) ([]APIToken, int, error) {
	var toks []APIToken
	total, err := db.NewSelect().Model(&toks).
		Where("user_id = ?", userID).
		OrderExpr("created_at DESC, id DESC").
		Limit(int64(limit)).Offset(int64(offset)).
		ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list tokens of user %s: %w", userID, err)
	}
	return toks, int(total), nil
}

// RevokeToken marks userID's token id revoked at now (keeping an earlier
// revocation time) and returns it.
func RevokeToken(ctx context.Context, db bun.IDB, userID, id uuid.UUID, now time.Time) (*APIToken, error) {
	tok := new(APIToken)
	res, err := db.NewUpdate().Model(tok).
		Set("revoked_at = COALESCE(revoked_at, ?)", now).
		Set("updated_at = ?", now).
		Where("id = ?", id).
		Where("user_id = ?", userID).
		Returning("*").
		Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("revoke token %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, ErrTokenNotFound
	}
	return tok, nil
}

// DeleteToken removes userID's token id.
func DeleteToken(ctx context.Context, db bun.IDB, userID, id uuid.UUID) error {
	res, err := db.NewDelete().Model((*APIToken)(nil)).
		Where("id = ?", id).
		Where("user_id = ?", userID).
		Exec(ctx)
	if err := affected(res, err, ErrTokenNotFound, "delete token %s", id); err != nil {
		return err
	}
	return nil
}
