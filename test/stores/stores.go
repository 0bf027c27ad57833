// Package stores opens each storage adapter for tests: an empty, migrated
// store, closed when the test ends. It is built on testenv.OpenStore,
// which an adapter's own (internal) tests call with their Open instead,
// since they cannot import this package: it imports theirs.
package stores

import (
	"context"
	"testing"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/adapters/storage/postgres"
	"github.com/activityd/activityd/adapters/storage/sqlite"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/testenv"
)

// Memory opens an in-process store.
func Memory(t testing.TB) *memory.Store {
	t.Helper()
	return testenv.OpenStore(t, func(context.Context) (*memory.Store, error) { return memory.New(), nil })
}

// SQLite opens a store on a new file in t's temp dir, with opts (zero or
// one).
func SQLite(t testing.TB, opts ...storage.Options) *sqlite.Store {
	t.Helper()
	o, url := options(t, opts), testenv.SQLiteURL(t)
	return testenv.OpenStore(t, func(ctx context.Context) (*sqlite.Store, error) { return sqlite.Open(ctx, url, o) })
}

// Postgres opens a store in a fresh schema (testenv.PostgresSchema), with
// opts (zero or one) and a pool of testenv.PostgresPoolSize unless opts
// sets MaxOpenConns. It skips t without PostgreSQL, or fails it where CI
// is set.
func Postgres(t testing.TB, opts ...storage.Options) *postgres.Store {
	t.Helper()
	o := options(t, opts)
	if o.MaxOpenConns == 0 {
		o.MaxOpenConns, o.MaxIdleConns = testenv.PostgresPoolSize, testenv.PostgresPoolSize
	}
	url, _ := testenv.PostgresSchema(t)
	return testenv.OpenStore(t, func(ctx context.Context) (*postgres.Store, error) { return postgres.Open(ctx, url, o) })
}

// Kind is a storage adapter's name and opener, for suites that run
// against every adapter.
type Kind struct {
	Name string
	Open func(t *testing.T) ports.Store
}

// All lists every storage adapter: memory, sqlite and postgres.
func All() []Kind {
	return []Kind{
		{"memory", func(t *testing.T) ports.Store { return Memory(t) }},
		{"sqlite", func(t *testing.T) ports.Store { return SQLite(t) }},
		{"postgres", func(t *testing.T) ports.Store { return Postgres(t) }},
	}
}

// options is the one storage.Options of a variadic argument, or none.
func options(t testing.TB, opts []storage.Options) storage.Options {
	t.Helper()
	switch len(opts) {
	case 0:
		return storage.Options{}
	case 1:
		return opts[0]
	}
	t.Fatalf("stores: %d storage.Options given, want at most one", len(opts))
	return storage.Options{}
}
