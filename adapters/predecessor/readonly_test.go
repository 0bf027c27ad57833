package predecessor

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/activityd/activityd/test/predecessors"
)

// readAll walks everything a source offers, as an import does.
func readAll(t *testing.T, s *Source) {
	t.Helper()
	ctx := context.Background()
	if err := s.Events(ctx, func(Row) error { return nil }); err != nil {
		t.Fatalf("Events: %v", err)
	}
	if err := s.Tokens(ctx, func(Token) error { return nil }); err != nil {
		t.Fatalf("Tokens: %v", err)
	}
	if err := s.Counts(ctx, func(Count) error { return nil }); err != nil {
		t.Fatalf("Counts: %v", err)
	}
	if _, err := s.CountEvents(ctx); err != nil {
		t.Fatalf("CountEvents: %v", err)
	}
	if _, err := s.MaxLegacyID(ctx); err != nil {
		t.Fatalf("MaxLegacyID: %v", err)
	}
}

// writes are statements the source's connections must refuse.
var writes = []string{
	`DELETE FROM activitylog_useractivitylog`,
	`UPDATE authtoken_token SET "key" = 'stolen'`,
	`CREATE TABLE intruder (x integer)`,
}

// mustRefuse checks that no write gets through, outside a transaction or
// inside one of the source's.
func mustRefuse(t *testing.T, s *Source) {
	t.Helper()
	ctx := context.Background()
	for _, q := range writes {
		if _, err := s.db.ExecContext(ctx, q); err == nil {
			t.Errorf("%s went through the source's pool", q)
		}
		if err := s.read(ctx, func(tx *sql.Tx) error { _, err := tx.ExecContext(ctx, q); return err }); err == nil {
			t.Errorf("%s went through a read transaction", q)
		}
	}
}

// The SQLite file is byte for byte the same after a whole read and after
// attempted writes, and no journal appears beside it.
func TestReadOnlySQLite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db.sqlite3")
	predecessors.ActivityLoggerSQLite(t, path, predecessors.AwkwardLogs(), predecessors.AwkwardTokens())
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	entries := func() []string {
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return names
	}
	filesBefore := entries()

	s, err := Open(context.Background(), ActivityLogger, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, s)
	mustRefuse(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the SQLite file changed")
	}
	if got := entries(); !slices.Equal(got, filesBefore) {
		t.Errorf("files beside the database: %v, want %v", got, filesBefore)
	}

	// A file the process may not write is read all the same.
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	s, err = Open(context.Background(), ActivityLogger, "sqlite:"+path)
	if err != nil {
		t.Fatalf("Open a read-only file: %v", err)
	}
	defer s.Close()
	readAll(t, s)
}

// PostgreSQL sessions refuse writes, even when the session default is
// turned off again: every read runs in a READ ONLY transaction.
func TestReadOnlyPostgres(t *testing.T) {
	url := predecessors.ActivityLoggerPostgres(t, predecessors.AwkwardLogs(), predecessors.AwkwardTokens())
	ctx := context.Background()
	s, err := Open(ctx, ActivityLogger, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	snapshot := func() string {
		var sum string
		if err := db.QueryRowContext(ctx, `SELECT md5(
			(SELECT string_agg(l::text, ',' ORDER BY l.id) FROM activitylog_useractivitylog l) ||
			(SELECT string_agg(k::text, ',' ORDER BY k.key) FROM authtoken_token k) ||
			(SELECT count(*)::text FROM pg_tables WHERE schemaname = current_schema()))`).Scan(&sum); err != nil {
			t.Fatal(err)
		}
		return sum
	}
	before := snapshot()
	readAll(t, s)
	mustRefuse(t, s)

	// Pin one connection, turn its session default off, and try again in
	// a read transaction on it.
	s.db.SetMaxOpenConns(1)
	if _, err := s.db.ExecContext(ctx, `SET default_transaction_read_only = off`); err != nil {
		t.Fatal(err)
	}
	err = s.read(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM activitylog_useractivitylog`)
		return err
	})
	if err == nil {
		t.Error("a DELETE went through a read transaction")
	}
	if after := snapshot(); after != before {
		t.Error("the PostgreSQL tables changed")
	}
}
