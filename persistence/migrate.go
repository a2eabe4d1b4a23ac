package persistence

import (
	"context"
	"fmt"
	"io"

	"github.com/saveaction/runner/migrations"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

func newMigrator(db *bun.DB) (*migrate.Migrator, error) {
	ms, err := migrations.New()
	if err != nil {
		return nil, err
	}
	return migrate.NewMigrator(db, ms, migrate.WithMarkAppliedOnSuccess(true)), nil
}

// withLockedMigrator runs fn under bun's migration lock, so several nodes
// starting at once do not race.
func withLockedMigrator(ctx context.Context, db *bun.DB, fn func(*migrate.Migrator) error) error {
	m, err := newMigrator(db)
	if err != nil {
		return err
	}
	if err := m.Init(ctx); err != nil {
		return fmt.Errorf("init migrations table: %w", err)
	}
	if err := m.Lock(ctx); err != nil {
		return fmt.Errorf("lock migrations: %w", err)
	}
	defer func() { _ = m.Unlock(context.WithoutCancel(ctx)) }()
	return fn(m)
}

// MigrateUp applies every pending migration; applied ones are listed on out.
func MigrateUp(ctx context.Context, db *bun.DB, out io.Writer) error {
	return withLockedMigrator(ctx, db, func(m *migrate.Migrator) error {
		group, err := m.Migrate(ctx)
		if err != nil {
			return fmt.Errorf("migrate up: %w", err)
		}
		if group.IsZero() {
			fmt.Fprintln(out, "database is up to date")
			return nil
		}
		fmt.Fprintf(out, "migrated to %s\n", group)
		return nil
	})
}

// MigrateDown rolls back the last group of migrations.
func MigrateDown(ctx context.Context, db *bun.DB, out io.Writer) error {
	return withLockedMigrator(ctx, db, func(m *migrate.Migrator) error {
		group, err := m.Rollback(ctx)
		if err != nil {
			return fmt.Errorf("migrate down: %w", err)
		}
		if group.IsZero() {
			fmt.Fprintln(out, "nothing to roll back")
			return nil
		}
		fmt.Fprintf(out, "rolled back %s\n", group)
		return nil
	})
}

// MigrateStatus prints each migration and whether it is applied.
func MigrateStatus(ctx context.Context, db *bun.DB, out io.Writer) error {
	m, err := newMigrator(db)
	if err != nil {
		return err
	}
	if err := m.Init(ctx); err != nil {
		return fmt.Errorf("init migrations table: %w", err)
	}
	ms, err := m.MigrationsWithStatus(ctx)
	if err != nil {
		return fmt.Errorf("migration status: %w", err)
	}
	for _, mg := range ms {
		state := "pending"
		if mg.IsApplied() {
			state = "applied"
		}
		fmt.Fprintf(out, "%s\t%s\n", mg.Name, state)
	}
	return nil
}
