// Package predecessor reads the databases of the two systems activityd
// replaces, for `activityd import`: the activity-logger (Django REST; SQLite
// or PostgreSQL) and the event-tracking service (Go/gin; PostgreSQL, and
// SQLite for tests). It is a driving adapter: it hands the rows over as
// stored, without judging them — the import's rules decide what to keep —
// and it never writes to the source.
//
// Every column is read cast to text and parsed here, so that the variants
// the predecessors' schemas came in (integer or bigint ids and users,
// SERIAL or uuid event ids, timestamp or timestamptz, json or jsonb) read
// alike. Times come back in UTC at microsecond precision; a time without
// an offset (Django's naive UTC on SQLite, a PostgreSQL `timestamp`) is
// taken as UTC. A PostgreSQL `timestamp` column that the gin service filled
// with offset times holds their wall clock times (PostgreSQL drops the
// offset): they read as UTC, since nothing in the database says otherwise.
package predecessor

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	_ "github.com/lib/pq"  // database/sql driver "postgres"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Kind names a predecessor system.
type Kind string

const (
	ActivityLogger Kind = "activity-logger" // the Django REST service
	EventTracking  Kind = "event-tracking"  // the Go/gin service
)

// Kinds lists the predecessors Open knows, for a command line's help.
var Kinds = []Kind{ActivityLogger, EventTracking}

// Row is one event row as the predecessor stored it, read without judging it:
// the import's rules decide what to keep.
type Row struct {
	Ref        string          // how a report names the row: "activitylog_useractivitylog id=7", "events event_id=12"
	ID         string          // the old id as text (integer; event-tracking's may also be a UUID)
	UserID     string          // as stored, as text: "6", "4294967296", "-3", "0" all reach the rules
	Action     string          // as stored
	Status     string          // activity-logger's status as stored; "" for event-tracking
	OccurredAt time.Time       // activity-logger: timestamp; event-tracking: event_action_timestamp (UTC)
	RecordedAt time.Time       // activity-logger: timestamp; event-tracking: created_at, or event_action_timestamp when created_at is NULL (UTC)
	Metadata   json.RawMessage // nil for SQL NULL; else the stored JSON text as is (may be a string, array, null, or not JSON at all)
	Problem    string          // non-empty when the row could not be read (e.g. a time that does not parse, a NULL user): why
}

// Token is one activity-logger DRF token (authtoken_token).
type Token struct {
	Ref     string    // "authtoken_token user_id=6"
	Key     string    // the secret as stored (DRF stores it in clear)
	UserID  string    // as stored, as text
	Created time.Time // UTC
	Problem string    // non-empty when the row could not be read (a NULL key or user, a time that does not parse): why
}

// Count is one row of event-tracking's user_event_counts.
type Count struct {
	Ref     string    // "user_event_counts id=3"
	UserID  string    // as stored, as text
	Count   int64     // the count as stored
	At      time.Time // created_at (UTC)
	Problem string    // non-empty when the row could not be read: why
}

// PageSize is how many event rows Events reads per query.
const PageSize = 1000

// dialect is what differs between the SQL engines.
type dialect int

const (
	sqliteDialect dialect = iota
	postgresDialect
)

// param is the n-th (1-based) placeholder.
func (d dialect) param(n int) string {
	if d == postgresDialect {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// Source is an open predecessor database. Its methods may be called one
// at a time or concurrently; each read runs in its own read-only
// transaction.
type Source struct {
	kind    Kind
	db      *sql.DB
	dialect dialect
	// intIDs reports whether event-tracking's event_id holds integers
	// (SERIAL, integer, bigint) rather than UUIDs.
	intIDs bool
}

// Open opens the predecessor database at url: "sqlite:PATH" (also "sqlite://PATH", "file:PATH")
// or "postgres://…"/"postgresql://…". It checks that the tables of kind exist and names
// what is missing otherwise. Read-only: it never writes to the source (SQLite is opened
// with mode=ro and query_only; PostgreSQL sessions default to read-only and every read
// runs in a READ ONLY transaction).
func Open(ctx context.Context, kind Kind, url string) (*Source, error) {
	if _, ok := tables[kind]; !ok {
		return nil, fmt.Errorf("predecessor: unknown kind %q (want %s or %s)", kind, ActivityLogger, EventTracking)
	}
	driver, dsn, d, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("predecessor: open %s database: %w", kind, err)
	}
	db.SetMaxOpenConns(2)
	db.SetMaxIdleConns(2)
	s := &Source{kind: kind, db: db, dialect: d}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("predecessor: connect to the %s database: %w", kind, err)
	}
	if err := s.check(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// parseURL returns the driver and DSN a predecessor URL names, with the
// read-only settings added.
func parseURL(raw string) (driver, dsn string, d dialect, err error) {
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok {
		return "", "", 0, fmt.Errorf("predecessor: URL %q has no scheme (want sqlite:PATH or postgres://…)", redact(raw))
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "file":
		path, _, _ := strings.Cut(rest, "?")
		path = strings.TrimPrefix(path, "//") // sqlite:///abs/x.db names /abs/x.db
		if path == "" || path == ":memory:" {
			return "", "", 0, fmt.Errorf("predecessor: URL %q names no database file", raw)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return "", "", 0, fmt.Errorf("predecessor: SQLite database: %w", err)
		}
		if fi.IsDir() {
			return "", "", 0, fmt.Errorf("predecessor: SQLite database %s is a directory", path)
		}
		// A SQLite URI filename: mode=ro opens the file read-only (and never
		// creates it); query_only refuses any write on the connection.
		q := url.Values{}
		q.Set("mode", "ro")
		q.Add("_pragma", "query_only(1)")
		q.Add("_pragma", "busy_timeout(5000)")
		return "sqlite", "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode(), sqliteDialect, nil
	case "postgres", "postgresql":
		u, err := url.Parse(raw)
		if err != nil {
			return "", "", 0, fmt.Errorf("predecessor: bad PostgreSQL URL %q: %w", redact(raw), err)
		}
		q := u.Query()
		// Run-time parameters of every session: no transaction may write,
		// and timestamptz casts to text in UTC.
		q.Set("default_transaction_read_only", "on")
		q.Set("timezone", "UTC")
		u.RawQuery = q.Encode()
		return "postgres", u.String(), postgresDialect, nil
	}
	return "", "", 0, fmt.Errorf("predecessor: URL scheme %q not supported (want sqlite:PATH, file:PATH, postgres:// or postgresql://)", scheme)
}

// redact hides a password in a URL for an error message.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// Kind reports which predecessor the source is.
func (s *Source) Kind() Kind { return s.kind }

// Close closes the database.
func (s *Source) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("predecessor: close: %w", err)
	}
	return nil
}

// eventTable is the table of kind's events and its id column.
func (s *Source) eventTable() (table, id string) {
	if s.kind == ActivityLogger {
		return "activitylog_useractivitylog", "id"
	}
	return "events", "event_id"
}

// read runs fn in a read-only transaction.
func (s *Source) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// CountEvents returns how many event rows there are, for the progress bar.
func (s *Source) CountEvents(ctx context.Context) (int64, error) {
	table, _ := s.eventTable()
	var n int64
	err := s.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("predecessor: count %s: %w", table, err)
	}
	return n, nil
}

// MaxLegacyID returns the greatest integer id of an event row: for the
// activity-logger max(id), for event-tracking max(event_id); 0 when there
// are none, or when event-tracking's ids are UUIDs.
func (s *Source) MaxLegacyID(ctx context.Context) (int64, error) {
	table, id := s.eventTable()
	if s.kind == EventTracking && !s.intIDs && s.dialect == postgresDialect {
		return 0, nil
	}
	q := `SELECT COALESCE(MAX("` + id + `"), 0) FROM ` + table
	if s.dialect == sqliteDialect {
		// SQLite keeps whatever it is given: count only the integers.
		q += ` WHERE typeof("` + id + `") = 'integer'`
	}
	var n int64
	if err := s.read(ctx, func(tx *sql.Tx) error { return tx.QueryRowContext(ctx, q).Scan(&n) }); err != nil {
		return 0, fmt.Errorf("predecessor: max %s.%s: %w", table, id, err)
	}
	return n, nil
}

// Events calls fn for every event row in id order (stable across runs), streaming with
// constant memory: keyset pages of PageSize rows by id, each read in its own read-only
// transaction, which is over before fn sees the page's rows. fn's error stops the walk
// and is returned as is; a cancelled ctx stops it before the next row. Each Row's
// Metadata is its own copy: fn may keep it.
func (s *Source) Events(ctx context.Context, fn func(Row) error) error {
	table, id := s.eventTable()
	cols := `CAST("id" AS TEXT), CAST("user_id" AS TEXT), CAST("action" AS TEXT), CAST("status" AS TEXT),
		CAST("timestamp" AS TEXT), NULL, CAST("metadata" AS TEXT)`
	if s.kind == EventTracking {
		cols = `CAST("event_id" AS TEXT), CAST("user_id" AS TEXT), CAST("action" AS TEXT), '',
		CAST("event_action_timestamp" AS TEXT), CAST("created_at" AS TEXT), CAST("metadata" AS TEXT)`
	}
	first := `SELECT "` + id + `", ` + cols + ` FROM ` + table + ` ORDER BY 1 LIMIT ` + strconv.Itoa(PageSize)
	next := `SELECT "` + id + `", ` + cols + ` FROM ` + table + ` WHERE "` + id + `" > ` + s.dialect.param(1) +
		` ORDER BY 1 LIMIT ` + strconv.Itoa(PageSize)

	var (
		cursor any // the last row's id, as the driver gave it
		page   = make([]Row, 0, PageSize)
	)
	for {
		page = page[:0]
		err := s.read(ctx, func(tx *sql.Tx) error {
			var (
				rows *sql.Rows
				err  error
			)
			if cursor == nil {
				rows, err = tx.QueryContext(ctx, first)
			} else {
				rows, err = tx.QueryContext(ctx, next, cursor)
			}
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var (
					raw                                  any
					id, user, action, status, at, rec, m sql.NullString
				)
				if err := rows.Scan(&raw, &id, &user, &action, &status, &at, &rec, &m); err != nil {
					return err
				}
				if b, ok := raw.([]byte); ok {
					raw = string(b) // a uuid or text id; the driver reuses the bytes
				}
				cursor = raw
				page = append(page, s.row(table, id, user, action, status, at, rec, m))
			}
			return rows.Err()
		})
		if err != nil {
			return fmt.Errorf("predecessor: read %s: %w", table, err)
		}
		for _, r := range page {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("predecessor: read %s: %w", table, err)
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < PageSize {
			return nil
		}
	}
}

// row builds a Row from its columns, naming what could not be read.
func (s *Source) row(table string, id, user, action, status, at, rec, meta sql.NullString) Row {
	_, idCol := s.eventTable()
	r := Row{
		Ref:    table + " " + idCol + "=" + id.String,
		ID:     id.String,
		UserID: user.String,
		Action: action.String,
		Status: status.String,
	}
	var problems []string
	null := func(col string, v sql.NullString) {
		if !v.Valid {
			problems = append(problems, col+" is NULL")
		}
	}
	null(idCol, id)
	null("user_id", user)
	null("action", action)
	if s.kind == ActivityLogger {
		null("status", status)
	}
	atCol := "timestamp"
	if s.kind == EventTracking {
		atCol = "event_action_timestamp"
	}
	if !at.Valid {
		problems = append(problems, atCol+" is NULL")
	} else if t, err := parseTime(at.String); err != nil {
		problems = append(problems, atCol+": "+err.Error())
	} else {
		r.OccurredAt, r.RecordedAt = t, t
	}
	if s.kind == EventTracking && rec.Valid {
		if t, err := parseTime(rec.String); err != nil {
			problems = append(problems, "created_at: "+err.Error())
		} else {
			r.RecordedAt = t
		}
	}
	if meta.Valid {
		r.Metadata = append(json.RawMessage{}, meta.String...)
	}
	r.Problem = strings.Join(problems, "; ")
	return r
}

// Tokens calls fn for each of the activity-logger's DRF tokens (authtoken_token),
// ordered by user_id then key; for event-tracking, which had none, it returns nil
// without calling fn. fn's error stops the walk and is returned as is.
func (s *Source) Tokens(ctx context.Context, fn func(Token) error) error {
	if s.kind != ActivityLogger {
		return nil
	}
	const q = `SELECT CAST("key" AS TEXT), CAST("user_id" AS TEXT), CAST("created" AS TEXT)
		FROM authtoken_token ORDER BY authtoken_token."user_id", authtoken_token."key"`
	return s.walk(ctx, "authtoken_token", q, func(c []sql.NullString) error {
		key, user, created := c[0], c[1], c[2]
		tok := Token{Ref: "authtoken_token user_id=" + user.String, Key: key.String, UserID: user.String}
		var problems []string
		if !key.Valid {
			problems = append(problems, "key is NULL")
		}
		if !user.Valid {
			problems = append(problems, "user_id is NULL")
		}
		if !created.Valid {
			problems = append(problems, "created is NULL")
		} else if t, err := parseTime(created.String); err != nil {
			problems = append(problems, "created: "+err.Error())
		} else {
			tok.Created = t
		}
		tok.Problem = strings.Join(problems, "; ")
		return fn(tok)
	})
}

// Counts calls fn for each row of event-tracking's user_event_counts, in id
// order; for the activity-logger, which had none, it returns nil without
// calling fn. fn's error stops the walk and is returned as is.
func (s *Source) Counts(ctx context.Context, fn func(Count) error) error {
	if s.kind != EventTracking {
		return nil
	}
	const q = `SELECT CAST("id" AS TEXT), CAST("user_id" AS TEXT), CAST("count" AS TEXT), CAST("created_at" AS TEXT)
		FROM user_event_counts ORDER BY user_event_counts."id"`
	return s.walk(ctx, "user_event_counts", q, func(c []sql.NullString) error {
		id, user, count, at := c[0], c[1], c[2], c[3]
		cnt := Count{Ref: "user_event_counts id=" + id.String, UserID: user.String}
		var problems []string
		if !user.Valid {
			problems = append(problems, "user_id is NULL")
		}
		if !count.Valid {
			problems = append(problems, "count is NULL")
		} else if n, err := strconv.ParseInt(count.String, 10, 64); err != nil {
			problems = append(problems, fmt.Sprintf("count %q is not an integer", count.String))
		} else {
			cnt.Count = n
		}
		if !at.Valid {
			problems = append(problems, "created_at is NULL")
		} else if t, err := parseTime(at.String); err != nil {
			problems = append(problems, "created_at: "+err.Error())
		} else {
			cnt.At = t
		}
		cnt.Problem = strings.Join(problems, "; ")
		return fn(cnt)
	})
}

// errStop carries fn's error out of a walk's transaction unwrapped.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

// walk streams the text columns of q's rows to fn within one read-only
// transaction (for the small tables: tokens, counts).
func (s *Source) walk(ctx context.Context, table, q string, fn func([]sql.NullString) error) error {
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			return err
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			return err
		}
		vals := make([]sql.NullString, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			if err := fn(vals); err != nil {
				return errStop{err}
			}
		}
		return rows.Err()
	})
	if stop, ok := errors.AsType[errStop](err); ok {
		return stop.err
	}
	if err != nil {
		return fmt.Errorf("predecessor: read %s: %w", table, err)
	}
	return nil
}
