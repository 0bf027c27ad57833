package postgres

import (
	"context"
	"testing"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/test/testenv"
)

// openStore opens (without migrating) a store on url, closed when the test
// ends.
func openStore(t testing.TB, url string, opts storage.Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newStore returns a migrated store in a fresh schema.
func newStore(t testing.TB) *Store {
	t.Helper()
	url, _ := testenv.PostgresSchema(t)
	s := openStore(t, url, testPool)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

// testPool keeps each test store small: packages test in parallel against
// one server, whose max_connections (100 by default) they share.
var testPool = storage.Options{MaxOpenConns: 8, MaxIdleConns: 8}
