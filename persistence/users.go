package persistence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// ErrUserNotFound means no live user has the id or email asked for.
var ErrUserNotFound = errors.New("user not found")

// EnsureUser returns the live user with email (compared case-insensitively),
// creating it with name when there is none. A name given for an existing user
// replaces an empty one but never overwrites a set one.
func EnsureUser(ctx context.Context, db bun.IDB, email, name string) (*User, error) {
	email = strings.TrimSpace(email)
	if email == "" || !strings.Contains(email, "@") {
		return nil, fmt.Errorf("ensure user: invalid email %q", email)
	}
	u := &User{Email: email, Name: strings.TrimSpace(name)}
	// ON CONFLICT on the partial unique index makes concurrent calls for one
	// email converge on a single row.
	_, err := db.NewInsert().Model(u).
		On("CONFLICT (lower(email)) WHERE deleted_at IS NULL DO UPDATE").
		Set(`name = CASE WHEN "user".name = '' THEN EXCLUDED.name ELSE "user".name END`).
		Set(`updated_at = CASE WHEN "user".name = '' AND EXCLUDED.name <> '' THEN now() ELSE "user".updated_at END`).
		Returning("*").
		Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("ensure user %s: %w", email, err)
	}
	return u, nil
}

// GetUser loads a live user by id.
func GetUser(ctx context.Context, db bun.IDB, id uuid.UUID) (*User, error) {
	u := new(User)
	err := db.NewSelect().Model(u).Where("id = ?", id).Where("deleted_at IS NULL").Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrUserNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load user %s: %w", id, err)
	}
	return u, nil
}
