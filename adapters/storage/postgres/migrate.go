package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// VersionTable is goose's bookkeeping table, in the current schema.
const VersionTable = "activityd_schema_migrations"

// migrateLockWait bounds how long a replica waits for another one's
// migration: polled every second, up to 10 minutes.
const (
	migrateLockPoll  = 1
	migrateLockPolls = 600
)

// Migrate applies the pending migrations under an advisory lock, then makes
// sure the monthly partitions around now exist. It is safe to call on every
// start and from several processes at once; a second run changes nothing.
//
// Migrations run on a connection of their own without statement_timeout
// (a migration may rewrite a large table) and with lock_timeout=30s, so a
// migration stuck behind a long transaction fails rather than blocks every
// query queued behind it.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.migrate(ctx, latest); err != nil {
		return err
	}
	if err := s.EnsurePartitions(ctx, time.Now()); err != nil {
		return err
	}
	return nil
}

// latest asks migrate for every migration.
const latest = -1

// migrate applies the migrations up to version (latest: all of them), or
// rolls back to it when the schema is newer.
func (s *Store) migrate(ctx context.Context, version int64) error {
	cfg := s.cfg.Clone()
	cfg.Runtime["statement_timeout"] = "0"
	cfg.Runtime["lock_timeout"] = "30000"
	conn, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	conn.Dialer(dialer{})
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxOpenConns(2)

	schema, err := currentSchema(ctx, db)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(lockKey("migrate", schema)),
		lock.WithLockTimeout(migrateLockPoll, migrateLockPolls),
	)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithSessionLocker(locker),
		goose.WithTableName(VersionTable),
		goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(canonicalMigration()),
	)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	switch {
	case version == latest:
		_, err = p.Up(ctx)
	default:
		var cur int64
		if cur, err = p.GetDBVersion(ctx); err == nil {
			if cur < version {
				_, err = p.UpTo(ctx, version)
			} else if cur > version {
				_, err = p.DownTo(ctx, version)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", wrap(err))
	}
	return nil
}

// Version returns the schema version applied (0 before any migration).
func (s *Store) Version(ctx context.Context) (int64, error) {
	var v sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT max(version_id) FROM `+pq.QuoteIdentifier(VersionTable)).Scan(&v)
	if err != nil {
		return 0, wrap(err)
	}
	return v.Int64, nil
}
