package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/test/testenv"
)

// openStore opens (without migrating) a store on url, closed when the test
// ends.
func openStore(t testing.TB, url string, opts storage.Options) *Store {
	t.Helper()
	return testenv.OpenUnmigrated(t, func(ctx context.Context) (*Store, error) { return Open(ctx, url, opts) })
}

// newStore returns a migrated store in a fresh schema, with testPool.
func newStore(t testing.TB) *Store {
	t.Helper()
	return newStoreWith(t, "", storage.Options{})
}

// newStoreWith is newStore with opts, on a URL with param ("" for none);
// testPool's pool unless opts sets MaxOpenConns.
func newStoreWith(t testing.TB, param string, opts storage.Options) *Store {
	t.Helper()
	url, _ := testenv.PostgresSchema(t)
	if k, v, ok := strings.Cut(param, "="); ok {
		url = testenv.WithParam(url, k, v)
	}
	if opts.MaxOpenConns == 0 {
		opts.MaxOpenConns, opts.MaxIdleConns = testPool.MaxOpenConns, testPool.MaxIdleConns
	}
	return testenv.OpenStore(t, func(ctx context.Context) (*Store, error) { return Open(ctx, url, opts) })
}

// testPool keeps each test store small (see testenv.PostgresPoolSize).
var testPool = storage.Options{MaxOpenConns: testenv.PostgresPoolSize, MaxIdleConns: testenv.PostgresPoolSize}
