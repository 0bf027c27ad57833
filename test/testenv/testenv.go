// Package testenv gives tests the real services they need: a fresh
// PostgreSQL schema per test, from TEST_DATABASE_URL, and a Redis key
// prefix per test, from TEST_REDIS_URL, or a private redis-server to stop
// and restart (defaults: the local servers). A test that needs a service skips when it is unreachable, and
// fails where the CI variable is set, so CI can never go green by skipping.
//
// It also holds the tests' one fake Clock and OpenStore, the opener under
// every test store (package test/stores has one per adapter). It imports
// no project package, so that the internal tests of any package may use it.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
)

// DefaultPostgresURL is used when TEST_DATABASE_URL is not set.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresBaseURL is TEST_DATABASE_URL or DefaultPostgresURL.
func PostgresBaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

var (
	pgOnce sync.Once
	pgErr  error
)

// NeedPostgres skips t when PostgreSQL does not answer, or fails it where
// CI is set.
func NeedPostgres(t testing.TB) {
	t.Helper()
	pgOnce.Do(func() {
		db, err := sql.Open("postgres", WithParam(PostgresBaseURL(), "connect_timeout", "3"))
		if err != nil {
			pgErr = err
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pgErr = db.PingContext(ctx)
	})
	unreachable(t, "PostgreSQL at TEST_DATABASE_URL", pgErr)
}

func unreachable(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is unreachable (CI is set, so this fails instead of skipping): %v", what, err)
	}
	t.Skipf("%s is unreachable: %v", what, err)
}

// WithParam adds a connection parameter to a URL or key=value DSN.
func WithParam(dsn, key, value string) string {
	if strings.Contains(dsn, "://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + key + "=" + value
	}
	return dsn + " " + key + "=" + value
}

// PostgresSchema creates an empty schema, dropped when the test ends, and
// returns a URL whose sessions use it (search_path), and its name. Runs
// and tests never see each other's rows.
func PostgresSchema(t testing.TB) (url, schema string) {
	t.Helper()
	NeedPostgres(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema = "act_" + hex.EncodeToString(b[:])
	db, err := sql.Open("postgres", PostgresBaseURL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE SCHEMA " + pq.QuoteIdentifier(schema)); err != nil {
		db.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		defer db.Close()
		if _, err := db.Exec("DROP SCHEMA " + pq.QuoteIdentifier(schema) + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return WithParam(PostgresBaseURL(), "search_path", schema), schema
}
