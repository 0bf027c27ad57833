// Package sqlite is the embedded SQLite store (DATABASE_URL=sqlite:PATH),
// the default when nothing is configured. It uses sqlx over the pure-Go
// modernc.org/sqlite driver, so the binary needs no C toolchain.
//
// URL forms:
//
//	sqlite:./data/activity.db   a path relative to the working directory
//	sqlite:///abs/path.db       an absolute path
//	sqlite::memory:             a private in-memory database (lost on Close)
//
// Anything after a '?' is handed to the driver as DSN parameters; a
// _pragma there replaces the default for that pragma (for example
// ?_pragma=cache_size(-131072) for a 128 MiB writer cache). Parent
// directories of the file are created.
//
// A file database runs in WAL mode with synchronous=NORMAL (a commit is
// durable at the next checkpoint; a crash of the process loses nothing, a
// crash of the machine may lose the last commits), foreign keys on, temp
// store in memory and a busy timeout of DefaultBusyTimeout (or
// Options.StatementTimeout, which also bounds every operation). The page
// cache is 2 MiB for the writer and for each reader.
//
// Writes go through their own pool of exactly one
// connection whose transactions begin IMMEDIATE, so writers queue
// instead of failing with SQLITE_BUSY, and the write lock is taken
// before anything is read (a compare-and-set cannot be lost). Writers take
// turns fairly (see writeTurns; database/sql hands a freed connection to
// a random waiter, which let concurrent large batches starve single
// creates for seconds): a create or a status change waits behind at most
// one batch, however many are queued. Reads go
// through a pool of several query-only connections that run in parallel
// with each other and with the writer. An in-memory database lives in one
// connection, which then serves reads and writes alike.
//
// Concurrent Creates are group-committed (storage.Group), one group at a
// time: whatever requests are waiting are stored in one transaction with
// one multi-row INSERT, and each is answered after the commit.
//
// Migrate applies the embedded, versioned migrations with goose, under a
// lock row so that several processes may migrate one file at once;
// version 9 is in Go (chainExisting): it links the changes made before
// there were chains. Maintain (ports.Maintainer) applies retention.
//
// Every change is linked into its user's hash chain (ports.Evidence,
// docs/evidence.md) in the transaction that records it, through
// insertChanges, unless storage.Options.Unchained turns chaining off.
//
// With storage.Options.TracerProvider both pools are opened through
// otelsql (storage.TraceSQL): every statement run under a span is a client
// span, its child, with its text (db.query.text, never a parameter's
// value) and db.system.name=sqlite. A group commit's transaction runs
// under a sqlite.group_commit span, a child of the first traced request's
// span and linked to the others'. With storage.Options.MeterProvider the
// pools' statistics are metrics labelled pool="sqlite_write" and
// "sqlite_read" (in memory: "sqlite"); see storage.ObservePool.
//
// Errors meaning the database cannot serve now (locked past the busy
// timeout, closed, I/O, a deadline) match domain.ErrUnavailable.
package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/XSAM/otelsql"
	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

func init() {
	storage.Register("sqlite", func(ctx context.Context, url string, opts storage.Options) (ports.Store, error) {
		return Open(ctx, url, opts)
	})
}

//go:embed migrations/*.sql
var migrationFS embed.FS

// DefaultBusyTimeout is how long a statement waits for a lock held by
// another connection (or process) before failing with an error matching
// domain.ErrUnavailable, when Options.StatementTimeout is not set.
const DefaultBusyTimeout = 5 * time.Second

// Store is the SQLite store. Its methods are safe for concurrent use.
type Store struct {
	w        *sqlx.DB // writes: one connection, BEGIN IMMEDIATE
	r        *sqlx.DB // reads: query-only connections (== w in memory)
	path     string   // file path; "" for an in-memory database
	writeDSN string
	timeout  time.Duration // per-operation deadline; 0: none
	busy     time.Duration // busy_timeout
	migrate  sync.Mutex    // one Migrate at a time in this process
	// turns orders the writers in front of the write pool, whose own
	// wait is in random order.
	turns writeTurns
	// onTurn, when set (tests), is called when a write transaction has
	// the write connection: group is true for a group commit of Creates.
	onTurn func(group bool)
	// unchained: changes are recorded without links in their users'
	// chains (storage.Options.Unchained).
	unchained bool

	tracer    trace.Tracer // group commit spans; nil: not traced
	unobserve func() error // ends the pool metrics

	group *storage.CreateGroup // the group commit behind Create

	closeOnce sync.Once
	closeErr  error
}

var _ ports.Store = (*Store)(nil)

// Config is a parsed sqlite: URL.
type Config struct {
	Path   string     // file path, or "" for an in-memory database
	Memory bool       // sqlite::memory:
	Params url.Values // extra DSN parameters
}

// ParseURL parses a sqlite: URL (see the package documentation).
func ParseURL(raw string) (Config, error) {
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || !strings.EqualFold(scheme, "sqlite") {
		return Config{}, fmt.Errorf("sqlite: URL %q does not start with sqlite:", raw)
	}
	rest, rawQuery, _ := strings.Cut(rest, "?")
	params, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Config{}, fmt.Errorf("sqlite: URL %q: bad parameters: %w", raw, err)
	}
	// sqlite:///abs/path.db names /abs/path.db; sqlite://rel.db names rel.db.
	rest = strings.TrimPrefix(rest, "//")
	switch rest {
	case "":
		return Config{}, fmt.Errorf("sqlite: URL %q names no file (e.g. sqlite:./data/activity.db or sqlite::memory:)", raw)
	case ":memory:":
		return Config{Memory: true, Params: params}, nil
	}
	return Config{Path: rest, Params: params}, nil
}

// Open opens (creating if need be) the database a sqlite: URL names. It
// does not migrate: call Migrate.
func Open(ctx context.Context, rawURL string, opts storage.Options) (*Store, error) {
	cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	busy := DefaultBusyTimeout
	if opts.StatementTimeout > 0 {
		busy = opts.StatementTimeout
	}
	common := url.Values{}
	common.Add("_pragma", "busy_timeout("+strconv.FormatInt(busy.Milliseconds(), 10)+")")
	common.Add("_pragma", "foreign_keys(1)")
	common.Add("_pragma", "synchronous(NORMAL)")
	common.Add("_pragma", "temp_store(MEMORY)")

	s := &Store{timeout: opts.StatementTimeout, busy: busy, turns: newWriteTurns(), unchained: opts.Unchained}
	openDB := func(dsn string) (*sqlx.DB, error) { return sqlx.Open("sqlite", dsn) }
	if tp, ok := opts.Traced(); ok {
		s.tracer = tp.Tracer(instrumentationName)
		traced := storage.TraceSQL(tp, semconv.DBSystemNameSQLite)
		openDB = func(dsn string) (*sqlx.DB, error) {
			db, err := otelsql.Open("sqlite", dsn, traced...)
			if err != nil {
				return nil, err
			}
			return sqlx.NewDb(db, "sqlite"), nil
		}
	}
	if opts.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.ConnectTimeout)
		defer cancel()
	}

	if cfg.Memory {
		// An in-memory database belongs to the connection that opened it:
		// keep exactly one connection, forever, and share it.
		q := cloneValues(common)
		q.Set("_txlock", "immediate")
		mergeValues(q, cfg.Params)
		db, err := openDB(":memory:?" + q.Encode())
		if err != nil {
			return nil, fmt.Errorf("sqlite: open in-memory database: %w", err)
		}
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
		if err := db.PingContext(ctx); err != nil {
			_ = db.Close()
			return nil, mapErr("open in-memory database", err)
		}
		s.w, s.r = db, db
		if s.unobserve, err = storage.ObservePool(opts.MeterProvider, map[string]*sql.DB{PoolMemory: db.DB}); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("sqlite: %w", err)
		}
		s.start()
		return s, nil
	}

	s.path = cfg.Path
	if strings.ContainsRune(cfg.Path, '?') {
		return nil, fmt.Errorf("sqlite: path %q must not contain '?'", cfg.Path)
	}
	if dir := filepath.Dir(cfg.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("sqlite: create directory for %s: %w", cfg.Path, err)
		}
	}

	wq := cloneValues(common)
	wq.Add("_pragma", "journal_mode(WAL)")
	// A page cache for the writer large enough for a batch of 1000 events
	// (every index of each, about 1 MiB of pages) not to spill dirty pages
	// to the WAL before it commits. The caches are outside Go's heap and
	// count whole, and more, against the 150 MB target of
	// docs/performance.md: 32 MiB for the writer and 8 MiB per reader
	// measured 121 MB of resident memory under 64 listing clients, 16 and
	// 2 MiB 74 MB; under 32 clients sending 1 MiB batches, a 16 MiB writer
	// cache peaked at 165-173 MB and a 2 MiB one at 127 MB, at the same
	// throughput (issue 13).
	wq.Add("_pragma", "cache_size(-2048)")
	wq.Set("_txlock", "immediate")
	mergeValues(wq, cfg.Params)
	s.writeDSN = cfg.Path + "?" + wq.Encode()
	w, err := openDB(s.writeDSN)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(opts.ConnMaxLifetime)
	// The first connection switches the file to WAL before any reader opens.
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, mapErr("open "+cfg.Path, err)
	}

	rq := cloneValues(common)
	rq.Add("_pragma", "query_only(1)")
	rq.Add("_pragma", "cache_size(-2048)")
	mergeValues(rq, cfg.Params)
	r, err := openDB(cfg.Path + "?" + rq.Encode())
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	readers := opts.MaxOpenConns
	if readers <= 0 {
		readers = max(4, runtime.GOMAXPROCS(0))
	}
	idle := opts.MaxIdleConns
	if idle <= 0 {
		idle = readers
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(idle)
	r.SetConnMaxLifetime(opts.ConnMaxLifetime)
	if err := r.PingContext(ctx); err != nil {
		_ = w.Close()
		_ = r.Close()
		return nil, mapErr("open "+cfg.Path, err)
	}
	s.w, s.r = w, r
	if s.unobserve, err = storage.ObservePool(opts.MeterProvider, map[string]*sql.DB{PoolWrite: w.DB, PoolRead: r.DB}); err != nil {
		_ = w.Close()
		_ = r.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	s.start()
	return s, nil
}

// The pool labels of the pool metrics (storage.ObservePool): a file
// database has a write pool and a read pool, an in-memory one a single
// pool.
const (
	PoolWrite  = "sqlite_write"
	PoolRead   = "sqlite_read"
	PoolMemory = "sqlite"
)

// instrumentationName names the tracer of the group commit spans.
const instrumentationName = "github.com/activityd/activityd/adapters/storage/sqlite"

// start starts the group commit behind Create (see flushGroup).
func (s *Store) start() {
	s.group = storage.NewGroup(1, maxGroup, s.flushGroup, storage.WithTurn(s.takeGroupTurn, s.endGroupTurn))
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// mergeValues adds the URL's own parameters: a _pragma replaces the
// default setting the same pragma, anything else replaces the default.
func mergeValues(dst, src url.Values) {
	for k, vs := range src {
		if k != "_pragma" {
			dst[k] = append([]string(nil), vs...)
			continue
		}
		for _, v := range vs {
			dst[k] = slices.DeleteFunc(dst[k], func(d string) bool { return pragmaName(d) == pragmaName(v) })
		}
		dst[k] = append(dst[k], vs...)
	}
}

// pragmaName returns the name in "name(value)" or "name=value".
func pragmaName(p string) string {
	if i := strings.IndexAny(p, "(="); i >= 0 {
		p = p[:i]
	}
	return strings.ToLower(strings.TrimSpace(p))
}

// Close closes both pools; it may be called more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// Stop taking creates, let the writer store what it was given.
		s.group.Close()
		errs := []error{s.unobserve()}
		if s.r != s.w {
			errs = append(errs, s.r.Close())
		}
		errs = append(errs, s.w.Close())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Ping runs a query on a read connection.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return mapErr("ping", err)
	}
	return nil
}

// Migrate applies every pending migration. Calls from several goroutines or
// processes on one file are serialised; a call with nothing to do changes
// nothing.
func (s *Store) Migrate(ctx context.Context) error {
	s.migrate.Lock()
	defer s.migrate.Unlock()
	migrations, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true), goose.WithGoMigrations(s.chainsMigration())}
	db := s.w.DB
	if s.path != "" {
		// goose holds one connection for the whole run and takes the lock
		// through another, so it needs a pool of its own (the write pool
		// has a single connection).
		mdb, err := sql.Open("sqlite", s.writeDSN)
		if err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		defer mdb.Close()
		mdb.SetMaxOpenConns(2)
		db = mdb
		opts = append(opts, goose.WithLocker(newLocker()))
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, migrations, opts...)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return mapErr("migrate", err)
	}
	return nil
}

// locker is a goose lock.Locker over a one-row table: Lock inserts the row
// (or takes it over once its lease has expired, after a crash), Unlock
// deletes it.
type locker struct {
	owner string
	lease time.Duration
	poll  time.Duration
}

func newLocker() *locker {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return &locker{owner: hex.EncodeToString(b[:]), lease: 10 * time.Minute, poll: 50 * time.Millisecond}
}

func (l *locker) Lock(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS activityd_migration_lock (
		id INTEGER PRIMARY KEY CHECK (id = 1), owner TEXT NOT NULL, expires_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create migration lock table: %w", err)
	}
	for {
		now := time.Now().UnixMicro()
		res, err := db.ExecContext(ctx, `INSERT INTO activityd_migration_lock (id, owner, expires_at) VALUES (1, ?, ?)
			ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
			WHERE activityd_migration_lock.expires_at < ?`, l.owner, now+l.lease.Microseconds(), now)
		if err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for migration lock: %w", ctx.Err())
		case <-time.After(l.poll):
		}
	}
}

func (l *locker) Unlock(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `DELETE FROM activityd_migration_lock WHERE id = 1 AND owner = ?`, l.owner); err != nil {
		return fmt.Errorf("release migration lock: %w", err)
	}
	return nil
}

// opCtx applies the per-operation deadline, if any.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout > 0 {
		return context.WithTimeout(ctx, s.timeout)
	}
	return ctx, func() {}
}

// writeTx runs fn in a write transaction (BEGIN IMMEDIATE) and commits it,
// after waiting for its turn as a small write (see writeTurns).
func (s *Store) writeTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	return s.writeTxAs(ctx, false, fn)
}

// writeBulkTx is writeTx for a bulk write: a batch, a counting window.
func (s *Store) writeBulkTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	return s.writeTxAs(ctx, true, fn)
}

func (s *Store) writeTxAs(ctx context.Context, bulk bool, fn func(tx *sqlx.Tx) error) error {
	if err := s.turns.take(ctx, bulk); err != nil {
		return err
	}
	defer s.turns.done(bulk)
	return s.writeTxTurn(ctx, fn)
}

// writeTxTurn is writeTx for a caller that holds a turn (s.turns).
func (s *Store) writeTxTurn(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// mapErr adds context to err and makes the errors that mean "the database
// cannot serve now" (locked, busy, closed, I/O, a deadline) match
// domain.ErrUnavailable. Sentinels of the domain pass through unchanged.
func mapErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, domain.ErrNotFound), errors.Is(err, domain.ErrStatusConflict), errors.Is(err, domain.ErrUnavailable):
		return err
	case unavailable(err):
		return fmt.Errorf("%w: sqlite: %s: %w", domain.ErrUnavailable, op, err)
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

func unavailable(err error) bool {
	var se *msqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
			sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOMEM:
			return true
		}
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, storage.ErrClosed) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "database is closed") || strings.Contains(msg, "database is locked")
}
