// Package postgres is the production store: PostgreSQL through sqlx and
// lib/pq, opened for DATABASE_URL=postgres://... (or postgresql://...).
//
// # Connection and pool
//
// The URL is a lib/pq URL; any parameter lib/pq does not know is sent to
// the server as a run-time setting (search_path=..., lock_timeout=...).
// storage.Options tune the pool; a zero field takes the default below:
//
//	MaxOpenConns      20    connections in the pool
//	MaxIdleConns      20    idle connections kept (never more than MaxOpenConns)
//	ConnMaxLifetime   30m   connections are recycled after this long
//	StatementTimeout  5s    server-side statement_timeout of every session
//	                        (a statement_timeout in the URL wins over the
//	                        default, not over an explicit option)
//	ConnectTimeout    3s    connect_timeout: dial plus start-up handshake
//
// Every session runs with TimeZone=UTC and application_name=activityd
// (unless the URL names one). Each event, token and ping call is also
// bounded on the client side (ConnectTimeout + StatementTimeout + 1s), so a
// server that vanishes mid-statement cannot hang a request, and TCP
// keep-alives notice a dead peer within about 25s on idle connections.
// Migrate and the partition maintenance have their own, longer limits.
//
// The hot statements (create, get, history, set status and the list
// shapes in use, 128 statements at most) run as server-side prepared
// statements: one round trip each, and no planning once PostgreSQL settles
// on a generic plan, which matters on a partitioned table, where planning
// grows with the number of partitions. Behind PgBouncer in transaction
// mode this needs PgBouncer 1.21 or later with max_prepared_statements
// set; or add statement_cache=off to the URL (a parameter of this package,
// not sent to the server) and every statement is sent unprepared, still in
// one round trip (lib/pq's binary_parameters mode is always on).
//
// # Group commit
//
// One INSERT per request tops out at the server's commit rate, so
// concurrent Creates share statements and commits: a request that finds a
// flusher free is stored at once, alone; while every flusher is busy
// (MaxOpenConns/4 of them, 1 to 8) requests queue, and the next free one
// stores up to 256 of them with one prepared multi-row statement, one
// round trip and one commit, answering each after that commit. An event
// the database refuses fails alone (its group is stored again one by
// one). Close stores what is queued before closing the pool. With a
// TracerProvider, a group's statement is under a postgres.group_commit
// span, a child of its first traced request and linked to the others.
//
// # Token cache
//
// TokenByHash answers from an in-process cache of known tokens and of
// unknown hashes that LISTEN/NOTIFY keeps exact across replicas (see
// tokencache.go): a creation or a revocation notifies activityd_tokens as
// it commits and every store's listener connection (application_name
// activityd-listener) empties its cache; while that connection is down the
// cache is not used.
//
// When the server cannot be reached — connection refused or reset, broken
// pipe, timeouts, "the database system is starting up", too many
// connections, shutdown, statement timeout — calls fail at once with an
// error matching domain.ErrUnavailable. Nothing is retried here: the pool
// drops broken connections and opens new ones on the next call, so the
// store recovers by itself when PostgreSQL comes back. Open does not
// connect; Ping or Migrate tell whether the server answers.
//
// # Telemetry
//
// With storage.Options.TracerProvider the pool's connector is wrapped by
// otelsql (storage.TraceSQL): every statement run under a span is a client
// span, its child, carrying the statement's text (db.query.text, never a
// parameter's value), db.system.name=postgresql, db.namespace,
// server.address and server.port; prepared statements are spans too
// (sql.conn.prepare once per connection, then sql.stmt.query). Without a
// span in the context, nothing is recorded. With
// storage.Options.MeterProvider the pool's statistics are metrics
// labelled pool="postgres" (storage.ObservePool).
//
// # Schema
//
// Migrate applies the versioned migrations embedded under migrations/ with
// goose, under a session-level advisory lock, so several replicas starting
// at once migrate once and the others wait, then find nothing to do. The
// lock key and goose's version table (activityd_schema_migrations) belong
// to the current schema (the first of search_path), so independent
// schemas in one database do not wait on each other.
//
// events is range-partitioned by month on recorded_at, with one partition
// per calendar month (UTC) named events_pYYYYMM and a DEFAULT partition
// that catches anything outside the monthly partitions. The status history
// (event_status_history) is partitioned the same way, on the recorded_at
// of its event, so a month of events and its history go together. Because
// a partitioned table's primary key must include the partition key,
// events' primary key is (recorded_at, id) (which is also the index for
// listing all users by recorded_at). An id is unique across partitions
// in one of two ways. A server-made id (a UUIDv7 that carries its
// recorded_at to the microsecond, domain.ID.Time) is stored at that place
// with nothing else: the primary key refuses a second one there. An id
// the client chose (its own, or one derived from an Idempotency-Key) is
// claimed in a separate, unpartitioned table event_ids(id primary key,
// recorded_at) with INSERT ... ON CONFLICT DO NOTHING, in the same
// statement that inserts the event, and only if no event sits at the
// place its time names. Get, History and SetStatus find an event's
// partition through event_ids, else through its id's time (routeOf in
// events.go). An event's first history entry (PENDING, at recorded_at,
// by created_by) is derived rather than stored; events created under
// schema version 1 keep the entry they stored. metadata is json holding
// the canonical bytes the domain wrote, passed through on reads.
//
// # Partitions and retention
//
// EnsurePartitions(ctx, now) creates the partitions of now's month and the
// next PartitionsAhead (3) months; Migrate calls it, and a long-running
// service should call it periodically (daily is plenty). When the DEFAULT
// partition already holds rows of a month being created (because no
// partition existed in time), they are moved into the new partition.
//
// DropPartitionsBefore(ctx, cutoff) is retention: it drops every monthly
// partition (events and history) that lies entirely before cutoff, and the
// event_ids rows of the events it held, one month per transaction. Rows in
// the DEFAULT partition are never dropped by it. Dropping a partition needs
// a short exclusive lock on the parent tables; the call waits at most
// lock_timeout=5s for it and fails otherwise (try again later).
//
// Tables activity_counts and activity_count_watermarks (per-window counts
// and the last window computed) are created by the first migration for the
// counting job (counts.go).
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/XSAM/otelsql"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

func init() {
	open := func(ctx context.Context, url string, opts storage.Options) (ports.Store, error) {
		return Open(ctx, url, opts)
	}
	storage.Register("postgres", open)
	storage.Register("postgresql", open)
}

// Defaults for the zero fields of storage.Options.
const (
	DefaultMaxOpenConns     = 20
	DefaultMaxIdleConns     = 20
	DefaultConnMaxLifetime  = 30 * time.Minute
	DefaultStatementTimeout = 5 * time.Second
	DefaultConnectTimeout   = 3 * time.Second
)

// Store is the PostgreSQL store. It is safe for concurrent use.
type Store struct {
	db        *sqlx.DB
	cfg       pq.Config // as used for the pool, for the migration connection
	opTimeout time.Duration
	stmts     stmtCache
	unobserve func() error         // ends the pool metrics
	group     *storage.CreateGroup // the queue behind Create
	tokens    *tokenCache          // TokenByHash's cache
	tracer    trace.Tracer         // group commit spans; nil: not traced
	w         *writeSQL            // the write statements: chained or not
}

var (
	_ ports.Store      = (*Store)(nil)
	_ ports.Maintainer = (*Store)(nil)
)

// Open prepares a pool for the PostgreSQL server url names. It does not
// connect: Ping or Migrate do.
func Open(_ context.Context, url string, opts storage.Options) (*Store, error) {
	cfg, err := pq.NewConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: bad DATABASE_URL: %w", redact(err, url))
	}
	if cfg.Runtime == nil {
		cfg.Runtime = map[string]string{}
	}
	connectTimeout := opts.ConnectTimeout
	switch {
	case connectTimeout > 0:
		cfg.ConnectTimeout = connectTimeout
	case cfg.ConnectTimeout > 0:
		connectTimeout = cfg.ConnectTimeout
	default:
		connectTimeout = DefaultConnectTimeout
		cfg.ConnectTimeout = connectTimeout
	}
	stmtTimeout := opts.StatementTimeout
	if stmtTimeout <= 0 {
		stmtTimeout = DefaultStatementTimeout
		if v, ok := cfg.Runtime["statement_timeout"]; ok {
			if ms, err := strconv.Atoi(v); err == nil { // PostgreSQL's unit: ms
				stmtTimeout = time.Duration(ms) * time.Millisecond
			} else if d, err := time.ParseDuration(strings.ReplaceAll(v, " ", "")); err == nil {
				stmtTimeout = d
			}
		} else {
			cfg.Runtime["statement_timeout"] = millis(stmtTimeout)
		}
	} else {
		cfg.Runtime["statement_timeout"] = millis(stmtTimeout)
	}
	setDefault(cfg.Runtime, "TimeZone", "UTC", "timezone")
	if cfg.ApplicationName == "" {
		cfg.ApplicationName = "activityd"
	}
	cacheOff := false
	for k, v := range cfg.Runtime {
		if strings.EqualFold(k, "statement_cache") { // ours, not a server setting
			delete(cfg.Runtime, k)
			cacheOff = v == "off" || v == "false" || v == "0" || v == "no"
		}
	}
	// One round trip per parameterised statement instead of two (parse,
	// then bind/execute). Only bytea values are passed as []byte, and those
	// mean the same in binary and in text.
	cfg.BinaryParameters = true

	conn, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	conn.Dialer(dialer{})
	var db *sql.DB
	if tp, ok := opts.Traced(); ok {
		db = otelsql.OpenDB(conn, storage.TraceSQL(tp, spanAttributes(cfg)...)...)
	} else {
		db = sql.OpenDB(conn)
	}
	maxOpen := cmpOr(opts.MaxOpenConns, DefaultMaxOpenConns)
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(min(cmpOr(opts.MaxIdleConns, DefaultMaxIdleConns), maxOpen))
	db.SetConnMaxLifetime(cmpOr(opts.ConnMaxLifetime, DefaultConnMaxLifetime))
	opT := connectTimeout + stmtTimeout + time.Second
	if stmtTimeout == 0 { // statement_timeout=0 in the URL: no limit
		opT = 0
	}
	unobserve, err := storage.ObservePool(opts.MeterProvider, map[string]*sql.DB{PoolName: db})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	st := &Store{db: sqlx.NewDb(db, "postgres"), cfg: cfg, opTimeout: opT, unobserve: unobserve,
		tokens: newTokenCache(listenerDSN(url)), w: chainedSQL}
	if opts.Unchained {
		st.w = unchainedSQL
	}
	st.stmts.closed = cacheOff // a closed cache prepares nothing
	if tp, ok := opts.Traced(); ok {
		st.tracer = tp.Tracer(instrumentationName)
	}
	st.group = storage.NewGroup(flushersFor(maxOpen, runtime.GOMAXPROCS(0)), maxGroup, st.flush)
	return st, nil
}

// instrumentationName names the tracer of the group commit spans.
const instrumentationName = "github.com/activityd/activityd/adapters/storage/postgres"

// PoolName is the pool label of the pool metrics (storage.ObservePool).
const PoolName = "postgres"

// spanAttributes are set on every SQL span: the semantic conventions'
// database system, database and server (the first, with several hosts).
func spanAttributes(cfg pq.Config) []attribute.KeyValue {
	attrs := []attribute.KeyValue{semconv.DBSystemNamePostgreSQL}
	if cfg.Database != "" {
		attrs = append(attrs, semconv.DBNamespace(cfg.Database))
	}
	host, _, _ := strings.Cut(cfg.Host, ",")
	if host == "" {
		host = "localhost"
	}
	attrs = append(attrs, semconv.ServerAddress(host))
	if cfg.Port != 0 {
		attrs = append(attrs, semconv.ServerPort(int(cfg.Port)))
	}
	return attrs
}

func millis(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

func setDefault(m map[string]string, key, value string, aliases ...string) {
	for k := range m {
		if strings.EqualFold(k, key) {
			return
		}
		for _, a := range aliases {
			if strings.EqualFold(k, a) {
				return
			}
		}
	}
	m[key] = value
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// redact keeps a password in the URL out of an error message.
func redact(err error, url string) error {
	msg := err.Error()
	if i := strings.Index(url, "://"); i >= 0 {
		rest := url[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "xxxxx")
			}
		}
	}
	return errors.New(msg)
}

// dialer is lib/pq's dialer with shorter TCP keep-alives, so a server that
// disappears without closing its connections is noticed in about 25s
// rather than minutes.
type dialer struct{}

func (dialer) netDialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout:         timeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 10 * time.Second, Interval: 5 * time.Second, Count: 3},
	}
}

func (d dialer) Dial(network, address string) (net.Conn, error) {
	return d.netDialer(0).Dial(network, address)
}

func (d dialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	return d.netDialer(timeout).Dial(network, address)
}

func (d dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return d.netDialer(0).DialContext(ctx, network, address)
}

// op bounds one call on the client side.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.opTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.opTimeout)
}

// DB returns the underlying pool, for tools and tests.
func (s *Store) DB() *sqlx.DB { return s.db }

// Ping reports whether the server answers; an error matches
// domain.ErrUnavailable.
//
// A pooled connection the server dropped (a restart, pg_terminate_backend)
// fails its ping and leaves the pool; the next ping takes another, and at
// worst dials a new one. So a failure is only believed once every pooled
// connection could have been tried, or when a new connection cannot be
// made: readiness must not turn false once per dead connection while the
// server answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var err error
	for range s.db.Stats().MaxOpenConnections + 1 {
		// lib/pq's Ping is a round trip (an empty query), also on an idle
		// connection.
		if err = s.db.PingContext(ctx); err == nil || ctx.Err() != nil || isDialError(err) {
			break
		}
	}
	if err != nil {
		return unavailable(wrap(err))
	}
	return nil
}

// isDialError reports whether err came from making a new connection (the
// server is unreachable), not from using a pooled one.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// unavailable makes sure a ping failure matches domain.ErrUnavailable even
// when its cause was not classified as such (a ping that fails means the
// storage is not usable).
func unavailable(err error) error {
	if errors.Is(err, domain.ErrUnavailable) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
}

// Close waits for the Creates already queued, then closes the pool.
func (s *Store) Close() error {
	s.group.Close()
	s.tokens.close()
	s.stmts.close()
	return errors.Join(s.unobserve(), s.db.Close())
}

// currentSchema names the schema unqualified tables are created in.
func currentSchema(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (string, error) {
	var schema sql.NullString
	if err := q.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return "", wrap(err)
	}
	if !schema.Valid {
		return "", errors.New("postgres: no schema of search_path exists; create it or fix search_path")
	}
	return schema.String, nil
}

// lockKey derives an advisory lock key for purpose in schema, so replicas
// sharing a schema share the lock and other schemas are not held up.
func lockKey(purpose, schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("activityd:" + purpose + ":" + schema))
	return int64(h.Sum64())
}
