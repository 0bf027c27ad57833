// Package predecessors builds the databases of the two systems activityd
// replaces, for the tests of `activityd import` and its reader
// (adapters/predecessor): the activity-logger's Django database, in SQLite
// or PostgreSQL, and the event-tracking service's PostgreSQL database (and
// a SQLite copy, for cheap tests). The DDL is what each predecessor's
// framework created (see ddl.go); the rows are raw, so that awkward values
// fit, and each carries the instants a reader must return for it (Want…),
// worked out by hand rather than by the parser under test.
//
// The PostgreSQL builders make a fresh schema per test in the test database
// (package testenv: TEST_DATABASE_URL; skipped when unreachable, failing
// where CI is set) and return a URL whose sessions use it (search_path); the
// schema is dropped when the test ends.
package predecessors

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/test/testenv"
	_ "github.com/lib/pq"  // "postgres"
	_ "modernc.org/sqlite" // "sqlite"
)

// LogRow is one row of the activity-logger's activitylog_useractivitylog.
type LogRow struct {
	ID        int64  // explicit (gaps allowed)
	UserID    int64  // an auth_user row is made for every user named
	Action    string // as stored: any case, any word
	Timestamp string // as stored: SQLite keeps the text verbatim; PostgreSQL casts it to timestamptz (no offset: UTC)
	Metadata  any    // nil → SQL NULL; a string, []byte or json.RawMessage → that text verbatim; else its JSON
	Status    string // as stored, valid or not

	// SQLiteOnly marks a row only SQLite can hold (text that is not JSON,
	// a time that does not parse): ActivityLoggerPostgres leaves it out.
	SQLiteOnly bool
	// Want is the instant Timestamp names, in UTC at microsecond
	// precision: what a reader must return. Zero when it names none (the
	// reader reports a Problem). Not stored.
	Want time.Time
}

// TokenRow is one DRF token (authtoken_token).
type TokenRow struct {
	Key     string // 40 hex characters, stored in clear as DRF does
	UserID  int64
	Created string    // as stored (see LogRow.Timestamp)
	Want    time.Time // the instant Created names (UTC); not stored
}

// EventRow is one row of the event-tracking service's events table.
type EventRow struct {
	ID                   string // event_id: an integer, or a UUID for EventSchema.UUIDIDs; "" → the default (sequence or gen_random_uuid)
	UserID               int64
	Action               string
	EventActionTimestamp string // as sent; stored as the instant it names (a `timestamp` column gets its UTC wall time)
	Metadata             any    // as LogRow.Metadata
	CreatedAt            string // "" → SQL NULL; else as EventActionTimestamp

	// WantOccurredAt is the instant EventActionTimestamp names (UTC,
	// microseconds); zero when it names none (the reader reports a
	// Problem). WantRecordedAt is what the reader must return as
	// RecordedAt: CreatedAt's instant, or WantOccurredAt when CreatedAt is
	// NULL. Not stored.
	WantOccurredAt, WantRecordedAt time.Time
}

// CountRow is one row of the event-tracking service's user_event_counts.
type CountRow struct {
	ID        int64 // explicit
	UserID    int64
	Count     int64
	CreatedAt string    // as stored (see EventRow.EventActionTimestamp)
	Want      time.Time // the instant CreatedAt names (UTC); not stored
}

// EventSchema picks a variant of the event-tracking schema; the zero value
// is the default: event_id SERIAL, user_id BIGINT, times `timestamp`
// (naive, UTC), metadata jsonb.
type EventSchema struct {
	UUIDIDs     bool // event_id uuid DEFAULT gen_random_uuid()
	IntUserIDs  bool // user_id INTEGER (the predecessor's own, which overflowed above 2^31): no row over 2^31 fits
	TimeZoned   bool // timestamptz columns
	JSONColumns bool // metadata json (kept verbatim) instead of jsonb (normalised)
}

// MetadataText returns the text a Metadata value stores, and false for nil
// (SQL NULL).
func MetadataText(v any) (string, bool) {
	switch m := v.(type) {
	case nil:
		return "", false
	case string:
		return m, true
	case json.RawMessage:
		return string(m), true
	case []byte:
		return string(m), true
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("predecessors: metadata %#v: %v", v, err))
	}
	return string(b), true
}

// metadataArg is v as a query argument: nil for SQL NULL, else its text.
func metadataArg(v any) any {
	s, ok := MetadataText(v)
	if !ok {
		return nil
	}
	return s
}

// ActivityLoggerSQLite creates the SQLite file path as the activity-logger's
// Django migrations would have (auth_user, activitylog_useractivitylog,
// authtoken_token) and fills it: an auth_user row for every user named,
// then logs and tokens. Rows that break a CHECK (text that is not JSON) go
// in with the checks off, as an older Django or a hand edit left them.
func ActivityLoggerSQLite(t testing.TB, path string, logs []LogRow, tokens []TokenRow) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatalf("predecessors: open %s: %v", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // the PRAGMA below holds for the one connection
	tx := begin(t, db, djangoSQLite)
	exec(t, tx, `PRAGMA ignore_check_constraints = ON`)
	insertUsers(t, tx, "?", logs, tokens)
	for _, l := range logs {
		exec(t, tx, `INSERT INTO activitylog_useractivitylog ("id", "action", "timestamp", "metadata", "status", "user_id")
			VALUES (?, ?, ?, ?, ?, ?)`, l.ID, l.Action, l.Timestamp, metadataArg(l.Metadata), l.Status, l.UserID)
	}
	for _, k := range tokens {
		exec(t, tx, `INSERT INTO authtoken_token ("key", "created", "user_id") VALUES (?, ?, ?)`, k.Key, k.Created, k.UserID)
	}
	commit(t, tx)
}

// ActivityLoggerPostgres creates the activity-logger's tables in a fresh
// PostgreSQL schema, fills them as ActivityLoggerSQLite does (leaving out
// the SQLiteOnly rows), and returns a URL whose sessions use the schema.
func ActivityLoggerPostgres(t testing.TB, logs []LogRow, tokens []TokenRow) (url string) {
	t.Helper()
	url, db := pgSchema(t)
	tx := begin(t, db, djangoPostgres)
	logs = PostgresLogs(logs)
	insertUsers(t, tx, "$", logs, tokens)
	for _, l := range logs {
		exec(t, tx, `INSERT INTO activitylog_useractivitylog ("id", "action", "timestamp", "metadata", "status", "user_id")
			VALUES ($1, $2, $3::timestamptz, $4::jsonb, $5, $6)`, l.ID, l.Action, l.Timestamp, metadataArg(l.Metadata), l.Status, l.UserID)
	}
	for _, k := range tokens {
		exec(t, tx, `INSERT INTO authtoken_token ("key", "created", "user_id") VALUES ($1, $2::timestamptz, $3)`, k.Key, k.Created, k.UserID)
	}
	// Django's identity sequences move past the explicit ids, as after real use.
	exec(t, tx, `SELECT setval(pg_get_serial_sequence('activitylog_useractivitylog', 'id'),
		GREATEST(COALESCE(MAX(id), 0), 1)) FROM activitylog_useractivitylog`)
	commit(t, tx)
	return url
}

// PostgresLogs returns logs without the SQLiteOnly rows: what
// ActivityLoggerPostgres stores.
func PostgresLogs(logs []LogRow) []LogRow {
	return slices.DeleteFunc(slices.Clone(logs), func(l LogRow) bool { return l.SQLiteOnly })
}

// EventTrackingPostgres creates the event-tracking service's tables (the
// default EventSchema) in a fresh PostgreSQL schema, fills them, and
// returns a URL whose sessions use the schema.
func EventTrackingPostgres(t testing.TB, events []EventRow, counts []CountRow) (url string) {
	t.Helper()
	return EventTrackingPostgresWith(t, EventSchema{}, events, counts)
}

// EventTrackingPostgresWith is EventTrackingPostgres with a schema variant.
func EventTrackingPostgresWith(t testing.TB, schema EventSchema, events []EventRow, counts []CountRow) (url string) {
	t.Helper()
	url, db := pgSchema(t)
	tx := begin(t, db, ginPostgres(schema))
	timeType := "timestamp"
	if schema.TimeZoned {
		timeType = "timestamptz"
	}
	metaType := "jsonb"
	if schema.JSONColumns {
		metaType = "json"
	}
	// A time is stored as the instant it names: cast to timestamptz first,
	// so that a `timestamp` column gets its UTC wall time (the session is
	// in UTC) rather than the offset dropped.
	at := func(n int) string { return fmt.Sprintf("$%d::timestamptz::%s", n, timeType) }
	for _, e := range events {
		cols, vals := `user_id, action, event_action_timestamp, metadata, created_at`,
			`$1, $2, `+at(3)+`, $4::`+metaType+`, `+at(5)
		args := []any{e.UserID, e.Action, e.EventActionTimestamp, metadataArg(e.Metadata), nullIfEmpty(e.CreatedAt)}
		if e.ID != "" {
			cols, vals = "event_id, "+cols, "$6, "+vals
			args = append(args, e.ID)
		}
		exec(t, tx, `INSERT INTO events (`+cols+`) VALUES (`+vals+`)`, args...)
	}
	if !schema.UUIDIDs {
		exec(t, tx, `SELECT setval(pg_get_serial_sequence('events', 'event_id'),
			GREATEST(COALESCE(MAX(event_id), 0), 1)) FROM events`)
	}
	for _, c := range counts {
		exec(t, tx, `INSERT INTO user_event_counts (id, user_id, count, created_at) VALUES ($1, $2, $3, $4::timestamptz)`,
			c.ID, c.UserID, c.Count, c.CreatedAt)
	}
	commit(t, tx)
	return url
}

// EventTrackingSQLite creates the event-tracking tables in the SQLite file
// path (integer event_id unless the rows carry UUIDs; times and metadata
// as text, verbatim) and fills them, for tests that need no PostgreSQL.
func EventTrackingSQLite(t testing.TB, path string, events []EventRow, counts []CountRow) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("predecessors: open %s: %v", path, err)
	}
	defer db.Close()
	tx := begin(t, db, ginSQLite)
	for _, e := range events {
		var id any
		if e.ID != "" {
			id = e.ID
			if n, err := strconv.ParseInt(e.ID, 10, 64); err == nil {
				id = n
			}
		}
		exec(t, tx, `INSERT INTO events (event_id, user_id, action, event_action_timestamp, metadata, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, id, e.UserID, e.Action, e.EventActionTimestamp, metadataArg(e.Metadata), nullIfEmpty(e.CreatedAt))
	}
	for _, c := range counts {
		exec(t, tx, `INSERT INTO user_event_counts (id, user_id, count, created_at) VALUES (?, ?, ?, ?)`,
			c.ID, c.UserID, c.Count, c.CreatedAt)
	}
	commit(t, tx)
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// pgSchema makes a fresh schema and returns its URL and a pool on it, in
// UTC, closed when the test ends (before the schema is dropped).
func pgSchema(t testing.TB) (string, *sql.DB) {
	t.Helper()
	url, _ := testenv.PostgresSchema(t)
	db, err := sql.Open("postgres", testenv.WithParam(url, "timezone", "UTC"))
	if err != nil {
		t.Fatalf("predecessors: open PostgreSQL: %v", err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	return url, db
}

// begin starts a transaction and runs the DDL statements in it.
func begin(t testing.TB, db *sql.DB, ddl []string) *sql.Tx {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatalf("predecessors: begin: %v", err)
	}
	for _, stmt := range ddl {
		exec(t, tx, stmt)
	}
	return tx
}

func exec(t testing.TB, tx *sql.Tx, q string, args ...any) {
	t.Helper()
	if _, err := tx.Exec(q, args...); err != nil {
		_ = tx.Rollback()
		t.Fatalf("predecessors: %s %v: %v", strings.Join(strings.Fields(q), " "), args, err)
	}
}

func commit(t testing.TB, tx *sql.Tx) {
	t.Helper()
	if err := tx.Commit(); err != nil {
		t.Fatalf("predecessors: commit: %v", err)
	}
}

// insertUsers makes the auth_user row of every user the logs and tokens
// name (Django's foreign keys need them), in id order. ph is the
// placeholder style: "?" or "$".
func insertUsers(t testing.TB, tx *sql.Tx, ph string, logs []LogRow, tokens []TokenRow) {
	t.Helper()
	var ids []int64
	for _, l := range logs {
		ids = append(ids, l.UserID)
	}
	for _, k := range tokens {
		ids = append(ids, k.UserID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	q := `INSERT INTO auth_user ("id", "password", "is_superuser", "username", "first_name", "last_name", "email",
		"is_staff", "is_active", "date_joined") VALUES (?, '!', false, ?, '', '', '', false, true, '2025-01-01 00:00:00')`
	if ph == "$" {
		q = `INSERT INTO auth_user ("id", "password", "is_superuser", "username", "first_name", "last_name", "email",
		"is_staff", "is_active", "date_joined") VALUES ($1, '!', false, $2, '', '', '', false, true, '2025-01-01 00:00:00+00')`
	}
	for _, id := range ids {
		exec(t, tx, q, id, "user"+strconv.FormatInt(id, 10))
	}
}
