package postgres

import (
	"context"
	"database/sql/driver"
	"strconv"
	"testing"
	"time"

	"github.com/lib/pq"
	"go.opentelemetry.io/otel/attribute"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/testenv"
	"github.com/activityd/activityd/test/tracing"
)

// The telemetry contract of SQL stores, with the prepared statement cache
// (statements run as sql.stmt.query) and without it (sql.conn.query); every
// span also names the database and the server.
func TestTracingContract(t *testing.T) {
	testenv.NeedPostgres(t)
	cfg, err := pq.NewConfig(testenv.PostgresBaseURL())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, param string
		query       string // span name of a statement run
	}{
		{"prepared", "", "sql.stmt.query"},
		{"unprepared", "statement_cache=off", "sql.conn.query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tracing.RunSQL(t, tracing.SQLStore{
				System: "postgresql",
				Attributes: map[attribute.Key]string{
					"db.namespace":   cfg.Database,
					"server.address": cfg.Host,
					"server.port":    strconv.Itoa(int(cfg.Port)),
				},
				Open: func(t *testing.T, opts storage.Options) ports.Store {
					return newStoreWith(t, tc.param, opts)
				},
				Insert:    tracing.Statement{Span: tc.query, Text: "INSERT INTO event_ids"},
				Select:    tracing.Statement{Span: tc.query, Text: "FROM events"},
				Violation: "check constraint",
				Driver:    "*pq.Driver",
				Drivers: func(s ports.Store) []driver.Driver {
					return []driver.Driver{s.(*Store).db.Driver()}
				},
				Pools: func(maxOpen int) map[string]int { return map[string]int{PoolName: maxOpen} },
			})
		})
	}
}

// The prepared statements still work through the wrapper: prepared once
// (the list's here: the create's was prepared by an untraced create),
// then executed without preparing again.
func TestPreparedStatementsTraced(t *testing.T) {
	tp, rec := tracing.NewRecorder(t)
	s := newStoreWith(t, "", storage.Options{TracerProvider: tp})
	now := time.Now()
	if _, _, err := s.Create(context.Background(), mkEvent(1, "login", now), "t"); err != nil {
		t.Fatal(err)
	}
	spans := tracing.UnderSpan(t, tp, rec, "parent", func(ctx context.Context) {
		if _, _, err := s.Create(ctx, mkEvent(2, "upload_file", now), "t"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.List(ctx, domain.Filter{UserID: 2, Limit: 10, Order: domain.Desc}); err != nil {
			t.Fatal(err)
		}
	})
	if tracing.FindSpan(spans, "sql.conn.prepare", "FROM events") == nil {
		t.Errorf("the list was not prepared: %s", tracing.Describe(spans))
	}
	if tracing.FindSpan(spans, "sql.conn.prepare", "INSERT INTO event_ids") != nil {
		t.Errorf("the create was prepared again: %s", tracing.Describe(spans))
	}
	s.stmts.mu.RLock()
	cached := s.stmts.stmts[chainedSQL.create] != nil
	s.stmts.mu.RUnlock()
	if !cached {
		t.Error("createSQL is not in the statement cache")
	}
	more := tracing.UnderSpan(t, tp, rec, "again", func(ctx context.Context) {
		if _, _, err := s.Create(ctx, mkEvent(2, "login", now), "t"); err != nil {
			t.Fatal(err)
		}
	})
	if tracing.FindSpan(more, "sql.stmt.query", "INSERT INTO event_ids") == nil || tracing.FindSpan(more, "sql.conn.prepare", "") != nil {
		t.Errorf("second create: want one sql.stmt.query and no prepare, got: %s", tracing.Describe(more))
	}
}
