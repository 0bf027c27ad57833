package postgres

import (
	"context"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/test/testenv"
)

func migrationCount(t *testing.T) int64 {
	t.Helper()
	files, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("embedded migrations: %v %v", files, err)
	}
	return int64(len(files)) + 1 // and the Go migration (canonicalMigration)
}

// TestMigrateConcurrent starts five "replicas" on one fresh schema at once:
// every Migrate succeeds, each migration is applied once, and one set of
// tables and partitions exists.
func TestMigrateConcurrent(t *testing.T) {
	url, schema := testenv.PostgresSchema(t)
	const replicas = 5
	stores := make([]*Store, replicas)
	for i := range stores {
		stores[i] = openStore(t, url, storage.Options{MaxOpenConns: 2})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	start := make(chan struct{})
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = s.Migrate(ctx)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: Migrate: %v", i, err)
		}
	}
	if t.Failed() {
		return
	}
	s := stores[0]
	var applied, distinct int64
	if err := s.db.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT version_id) FROM `+VersionTable+` WHERE version_id > 0`).Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if want := migrationCount(t); applied != want || distinct != want {
		t.Errorf("version table: %d rows for %d versions, want %d each", applied, distinct, want)
	}
	if v, err := s.Version(ctx); err != nil || v != migrationCount(t) {
		t.Errorf("Version = %d, %v; want %d", v, err, migrationCount(t))
	}
	var tables []string
	if err := s.db.SelectContext(ctx, &tables, `
		SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		ORDER BY 1`, schema); err != nil {
		t.Fatal(err)
	}
	want := []string{"activity_count_watermarks", "activity_counts", VersionTable, "api_tokens", "cache_instance", "cache_missed", "chain_heads", "changes", "checkpoints", "event_ids", "event_status_history", "events", "feed_head", "legacy_ids", "pruned_before", "webhook_deliveries", "webhook_subscriptions"}
	if len(tables) != len(want) {
		t.Fatalf("tables = %v, want %v", tables, want)
	}
	for i := range want {
		if tables[i] != want[i] {
			t.Errorf("tables = %v, want %v", tables, want)
			break
		}
	}
	parts, err := s.Partitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != PartitionsAhead+1 {
		t.Errorf("%d monthly partitions of events, want %d: %+v", len(parts), PartitionsAhead+1, parts)
	}
	var history int
	if err := s.db.GetContext(ctx, &history, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'event_status_history'::regclass`); err != nil {
		t.Fatal(err)
	}
	if history != PartitionsAhead+2 { // + DEFAULT
		t.Errorf("event_status_history has %d partitions, want %d", history, PartitionsAhead+2)
	}

	// A second run on a migrated schema changes nothing.
	for _, s := range stores[:2] {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate again: %v", err)
		}
	}
	var again int64
	if err := s.db.GetContext(ctx, &again, `SELECT count(*) FROM `+VersionTable+` WHERE version_id > 0`); err != nil {
		t.Fatal(err)
	}
	if again != applied {
		t.Errorf("after a second Migrate the version table has %d rows, want %d", again, applied)
	}
}

// TestMigrateNoSchema: a search_path naming no existing schema is a clear
// error, not tables created somewhere else.
func TestMigrateNoSchema(t *testing.T) {
	testenv.NeedPostgres(t)
	s := openStore(t, testenv.WithParam(testenv.PostgresBaseURL(), "search_path", "act_does_not_exist"), storage.Options{})
	err := s.Migrate(t.Context())
	if err == nil {
		t.Fatal("Migrate with a missing schema: no error")
	}
}
