package persistence_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/saveaction/runner/persistence"
	"github.com/saveaction/runner/persistence/pgtest"
)

func TestCreateAndAuthenticateToken(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.New(t)
	ctx := context.Background()
	u, err := persistence.EnsureUser(ctx, db, "ci@example.com", "CI")
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	plain, tok, err := persistence.CreateToken(ctx, db, u.ID, " ci ", []string{persistence.ScopeRunsRead}, &exp)
	if err != nil {
		t.Fatal(err)
	}
	if !persistence.WellFormedToken(plain) || len(plain) != len("sa_live_")+64 {
		t.Fatalf("token %q", plain)
	}
	if tok.TokenHash == plain || tok.TokenHash != persistence.HashToken(plain) || len(tok.TokenHash) != 64 {
		t.Fatalf("hash %q", tok.TokenHash)
	}
	if tok.TokenPrefix != plain[:16] || tok.TokenSuffix != plain[len(plain)-4:] || tok.Name != "ci" {
		t.Fatalf("display parts %q %q name %q", tok.TokenPrefix, tok.TokenSuffix, tok.Name)
	}
	// The plaintext is nowhere in the table.
	n, err := db.NewSelect().Model((*persistence.APIToken)(nil)).
		Where("token_hash = ? OR token_prefix = ? OR token_suffix = ?", plain, plain, plain).Count(ctx)
	if err != nil || n != 0 {
		t.Fatalf("plaintext stored (%d, %v)", n, err)
	}

	now := time.Now().UTC()
	got, err := persistence.AuthenticateToken(ctx, db, plain, now)
	if err != nil || got.ID != tok.ID || got.UserID != u.ID || got.LastUsedAt == nil {
		t.Fatalf("authenticate: %+v %v", got, err)
	}
	// Within a minute the last use is not rewritten.
	again, err := persistence.AuthenticateToken(ctx, db, plain, now.Add(10*time.Second))
	if err != nil || !again.LastUsedAt.Equal(*got.LastUsedAt) {
		t.Fatalf("last use rewritten: %v -> %v (%v)", got.LastUsedAt, again.LastUsedAt, err)
	}

	for name, tc := range map[string]struct {
		tok string
		at  time.Time
	}{
		"malformed":  {"sa_live_123", now},
		"wrong case": {strings.ToUpper(plain), now},
		"unknown":    {persistence.TokenPrefix + strings.Repeat("0", 64), now},
		"expired":    {plain, exp.Add(time.Second)},
	} {
		if _, err := persistence.AuthenticateToken(ctx, db, tc.tok, tc.at); !errors.Is(err, persistence.ErrTokenInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := persistence.RevokeToken(ctx, db, uuid.New(), tok.ID, now); !errors.Is(err, persistence.ErrTokenNotFound) {
		t.Fatalf("revoke by another user: %v", err)
	}
	if _, err := persistence.RevokeToken(ctx, db, u.ID, tok.ID, now); err != nil {
		t.Fatal(err)
	}
	if _, err := persistence.AuthenticateToken(ctx, db, plain, now); !errors.Is(err, persistence.ErrTokenInvalid) {
		t.Fatalf("revoked token: %v", err)
	}
	toks, total, err := persistence.ListTokens(ctx, db, u.ID, 10, 0)
	if err != nil || total != 1 || len(toks) != 1 || toks[0].RevokedAt == nil {
		t.Fatalf("list %+v %d %v", toks, total, err)
	}
	if err := persistence.DeleteToken(ctx, db, u.ID, tok.ID); err != nil {
		t.Fatal(err)
	}
	if err := persistence.DeleteToken(ctx, db, u.ID, tok.ID); !errors.Is(err, persistence.ErrTokenNotFound) {
		t.Fatalf("delete twice: %v", err)
	}

	for name, tc := range map[string]struct {
		name   string
		scopes []string
		exp    *time.Time
	}{
		"no name":     {"", persistence.AllScopes, nil},
		"no scopes":   {"x", nil, nil},
		"bad scope":   {"x", []string{"root"}, nil},
		"past expiry": {"x", persistence.AllScopes, &now},
	} {
		if _, _, err := persistence.CreateToken(ctx, db, u.ID, tc.name, tc.scopes, tc.exp); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseScopes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", persistence.AllScopes, false},
		{" , ", persistence.AllScopes, false},
		{"runs:read", []string{"runs:read"}, false},
		{" runs:read , runs:execute,runs:read", []string{"runs:read", "runs:execute"}, false},
		{"runs:read,admin", nil, true},
		{"RUNS:READ", nil, true},
	} {
		got, err := persistence.ParseScopes(tc.in)
		if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
			t.Errorf("ParseScopes(%q) = %v, %v", tc.in, got, err)
		}
	}
	// Callers get a copy: changing it does not change AllScopes.
	got, _ := persistence.ParseScopes("")
	got[0] = "changed"
	if persistence.AllScopes[0] == "changed" {
		t.Fatal("ParseScopes returned AllScopes itself")
	}
}

// The fleet scopes are valid but never given by default.
func TestFleetScopesAreNeverDefault(t *testing.T) {
	all, err := persistence.ParseScopes("")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		scope     string
		inDefault bool
	}{
		{persistence.ScopeWorkersRead, false},
		{persistence.ScopeWorkersManage, false},
		{persistence.ScopeRunsRead, true},
	}
	for _, c := range cases {
		if got := slices.Contains(all, c.scope); got != c.inDefault {
			t.Errorf("%s in the default scopes = %v, want %v", c.scope, got, c.inDefault)
		}
		if got := slices.Contains(persistence.AllScopes, c.scope); got != c.inDefault {
			t.Errorf("%s in AllScopes = %v, want %v", c.scope, got, c.inDefault)
		}
		if sc, err := persistence.ParseScopes(c.scope); err != nil || len(sc) != 1 || sc[0] != c.scope {
			t.Errorf("--scopes %s = %v, %v", c.scope, sc, err)
		}
	}
}
