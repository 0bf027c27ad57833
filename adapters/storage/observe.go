package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/XSAM/otelsql"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"
)

// instrumentationName names the meter of the pool metrics.
const instrumentationName = "github.com/activityd/activityd/adapters/storage"

// TraceSQL returns the options a SQL adapter wraps its database/sql pool
// with (otelsql.OpenDB or otelsql.Open) when Options.TracerProvider is set;
// attrs go on every span (db.system.name and the like). With them:
//
//   - each statement (exec, query, prepare), begin, commit and rollback,
//     and each new connection, is a client span named after the
//     database/sql call (sql.stmt.query, sql.conn.exec, sql.tx.commit...),
//     with the statement's text in db.query.text: parameterised, so no
//     value is ever recorded;
//   - only when the statement's context carries a span, which becomes its
//     parent: work that is not part of a traced request (maintenance,
//     migrations, the pool's own housekeeping) makes no spans;
//   - no spans for iterating rows, resetting a session or pinging;
//   - a failed call records its error and an error status, except
//     context.Canceled (nobody waits for the answer) and sql.ErrNoRows.
//     A cancellation the driver reports as an error of its own (lib/pq's
//     57014 "canceling statement due to user request", SQLite's
//     "interrupted") is recorded: the hook does not see the context, and
//     the same error also means a deadline that ran out;
//   - no metrics: otelsql's own are given a no-op MeterProvider, so they
//     cannot appear, or change names, under an upgrade; the pool metrics
//     are ObservePool's.
func TraceSQL(tp trace.TracerProvider, attrs ...attribute.KeyValue) []otelsql.Option {
	return []otelsql.Option{
		otelsql.WithTracerProvider(tp),
		otelsql.WithMeterProvider(noopmetric.NewMeterProvider()),
		otelsql.WithAttributes(attrs...),
		otelsql.WithSpanOptions(otelsql.SpanOptions{
			OmitRows:             true,
			OmitConnResetSession: true,
			DisableErrSkip:       true,
			RecordError:          recordSQLError,
			SpanFilter:           hasParentSpan,
		}),
	}
}

func hasParentSpan(ctx context.Context, _ otelsql.Method, _ string, _ []driver.NamedValue) bool {
	return trace.SpanContextFromContext(ctx).IsValid()
}

func recordSQLError(err error) bool {
	return !errors.Is(err, context.Canceled) && !errors.Is(err, sql.ErrNoRows) && !errors.Is(err, driver.ErrSkip)
}

// ObservePool reports the connection pools' statistics (sql.DB.Stats) as
// metrics of mp, each labelled pool=<the map key>, read when the metrics
// are collected:
//
//	activityd.db.connections{pool,state}  gauge: open connections, state idle or in_use
//	activityd.db.connections.max{pool}    gauge: the pool's bound (0: unbounded)
//	activityd.db.connection.waits{pool}   counter: connections waited for
//	activityd.db.connection.wait_duration{pool}  counter, seconds: time spent waiting for one
//
// which the Prometheus exporter serves as activityd_db_connections,
// activityd_db_connections_max, activityd_db_connection_waits_total and
// activityd_db_connection_wait_duration_seconds_total. A nil mp observes
// nothing. Call unregister (idempotent) when the pools close; a pool name
// should be observed by one store at a time per MeterProvider.
func ObservePool(mp metric.MeterProvider, pools map[string]*sql.DB) (unregister func() error, err error) {
	if mp == nil || len(pools) == 0 {
		return func() error { return nil }, nil
	}
	m := mp.Meter(instrumentationName)
	conns, err := m.Int64ObservableGauge("activityd.db.connections",
		metric.WithDescription("Open connections of a database pool, by state: idle or in_use."))
	if err != nil {
		return nil, fmt.Errorf("pool metrics: %w", err)
	}
	maxConns, err := m.Int64ObservableGauge("activityd.db.connections.max",
		metric.WithDescription("Most connections a database pool opens; 0 means no bound."))
	if err != nil {
		return nil, fmt.Errorf("pool metrics: %w", err)
	}
	waits, err := m.Int64ObservableCounter("activityd.db.connection.waits",
		metric.WithDescription("Times a caller waited for a free connection of a database pool."))
	if err != nil {
		return nil, fmt.Errorf("pool metrics: %w", err)
	}
	waitDur, err := m.Float64ObservableCounter("activityd.db.connection.wait_duration", metric.WithUnit("s"),
		metric.WithDescription("Time callers spent waiting for a free connection of a database pool."))
	if err != nil {
		return nil, fmt.Errorf("pool metrics: %w", err)
	}

	type observed struct {
		db                *sql.DB
		pool, idle, inUse metric.MeasurementOption
	}
	names := make([]string, 0, len(pools))
	for name := range pools {
		names = append(names, name)
	}
	slices.Sort(names)
	obs := make([]observed, 0, len(names))
	for _, name := range names {
		p := attribute.String("pool", name)
		obs = append(obs, observed{
			db:    pools[name],
			pool:  metric.WithAttributeSet(attribute.NewSet(p)),
			idle:  metric.WithAttributeSet(attribute.NewSet(p, attribute.String("state", "idle"))),
			inUse: metric.WithAttributeSet(attribute.NewSet(p, attribute.String("state", "in_use"))),
		})
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, p := range obs {
			st := p.db.Stats()
			o.ObserveInt64(conns, int64(st.Idle), p.idle)
			o.ObserveInt64(conns, int64(st.InUse), p.inUse)
			o.ObserveInt64(maxConns, int64(st.MaxOpenConnections), p.pool)
			o.ObserveInt64(waits, st.WaitCount, p.pool)
			o.ObserveFloat64(waitDur, st.WaitDuration.Seconds(), p.pool)
		}
		return nil
	}, conns, maxConns, waits, waitDur)
	if err != nil {
		return nil, fmt.Errorf("pool metrics: %w", err)
	}
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() { err = reg.Unregister() })
		return err
	}, nil
}

// BatchSpan starts the span of a statement or transaction that serves a
// group of requests at once (a group commit): a child of the first traced
// request's span, linked to the others' (as a batch is in OpenTelemetry),
// so the shared SQL shows in one request's trace and the others point to
// it. With a nil tracer, or no traced request, it returns ctx and a span
// that records nothing. End it with EndSpan.
func BatchSpan(ctx context.Context, tracer trace.Tracer, name string, requests []context.Context, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if tracer == nil {
		return ctx, nooptrace.Span{}
	}
	var parent trace.SpanContext
	var links []trace.Link
	for _, r := range requests {
		sc := trace.SpanContextFromContext(r)
		switch {
		case !sc.IsValid():
		case !parent.IsValid():
			parent = sc
		default:
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	if !parent.IsValid() {
		return ctx, nooptrace.Span{}
	}
	return tracer.Start(trace.ContextWithSpanContext(ctx, parent), name,
		trace.WithLinks(links...), trace.WithAttributes(attrs...))
}

// EndSpan ends span, recording err as its error when not nil.
func EndSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "")
	}
	span.End()
}
