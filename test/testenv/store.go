package testenv

import (
	"context"
	"io"
	"path/filepath"
	"testing"
)

// PostgresPoolSize is the connection pool (MaxOpenConns and MaxIdleConns)
// of a test's PostgreSQL store unless it asks for another: packages test
// in parallel against one server, whose max_connections (100 by default)
// they share.
const PostgresPoolSize = 8

// SQLiteURL names a new database file in t's temp dir.
func SQLiteURL(t testing.TB) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "activity.db")
}

// Migrator is what OpenStore needs of a store: every ports.Store is one.
type Migrator interface {
	Migrate(ctx context.Context) error
	io.Closer
}

// OpenStore opens a store with open and migrates it, failing t on an
// error, and closes it when t ends (a failed Close fails t). It imports no
// adapter, so that an adapter's own tests can pass their Open; other tests
// use the openers of package test/stores, built on it.
func OpenStore[S Migrator](t testing.TB, open func(ctx context.Context) (S, error)) S {
	t.Helper()
	s := OpenUnmigrated(t, open)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate the store: %v", err)
	}
	return s
}

// OpenUnmigrated is OpenStore without the migration, for tests of what
// happens before or during one.
func OpenUnmigrated[S io.Closer](t testing.TB, open func(ctx context.Context) (S, error)) S {
	t.Helper()
	s, err := open(context.Background())
	if err != nil {
		t.Fatalf("open the store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close the store: %v", err)
		}
	})
	return s
}
