package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/test/testenv"
)

// TestUnavailable: with nothing listening, every call fails at once with
// an error matching domain.ErrUnavailable instead of hanging.
func TestUnavailable(t *testing.T) {
	s, err := storage.Open(t.Context(), "postgres://postgres@127.0.0.1:1/test?sslmode=disable", storage.Options{ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("Open does not connect, so it must not fail: %v", err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // a guard, not an assertion
	defer cancel()
	e := mkEvent(1, "login", time.Now())
	calls := map[string]func() error{
		"Ping":    func() error { return s.Ping(ctx) },
		"Migrate": func() error { return s.Migrate(ctx) },
		"Create":  func() error { _, _, err := s.Create(ctx, e, "x"); return err },
		"CreateMany": func() error {
			_, err := s.CreateMany(ctx, []domain.Event{e}, "x")
			return err
		},
		"Get":         func() error { _, err := s.Get(ctx, e.ID); return err },
		"History":     func() error { _, err := s.History(ctx, e.ID); return err },
		"List":        func() error { _, err := s.List(ctx, domain.Filter{UserID: 1}); return err },
		"SetStatus":   func() error { _, err := s.SetStatus(ctx, e.ID, "PENDING", "IN_PROGRESS", time.Now(), "x"); return err },
		"CountWindow": func() error { _, err := s.CountWindow(ctx, time.Now().Add(-time.Hour), time.Now()); return err },
		"TokenByHash": func() error { _, err := s.TokenByHash(ctx, []byte("h")); return err },
		"ListTokens":  func() error { _, err := s.ListTokens(ctx); return err },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, domain.ErrUnavailable) {
			t.Errorf("%s: err = %v, want one matching domain.ErrUnavailable", name, err)
		}
	}
	if ctx.Err() != nil {
		t.Error("the calls ran into the 30s guard: something hangs")
	}
}

// TestRegistered: both URL schemes open this store; Open checks the URL
// without connecting.
func TestRegistered(t *testing.T) {
	for _, scheme := range []string{"postgres", "postgresql"} {
		if !slices.Contains(storage.Schemes(), scheme) {
			t.Errorf("scheme %q is not registered", scheme)
		}
		st, err := storage.Open(t.Context(), scheme+"://u:secret@127.0.0.1:1/db?sslmode=disable", storage.Options{})
		if err != nil {
			t.Fatalf("Open %s: %v", scheme, err)
		}
		if _, ok := st.(*Store); !ok {
			t.Errorf("Open %s returned a %T", scheme, st)
		}
		st.Close()
	}
	if _, err := Open(t.Context(), "postgres://u:secret@127.0.0.1:1/db?sslmode=bogus", storage.Options{}); err == nil {
		t.Error("Open with a bad sslmode: no error")
	} else if strings.Contains(err.Error(), "secret") {
		t.Errorf("the error shows the password: %v", err)
	}
}

// TestReconnect: when the server drops every connection (a restart, a
// failover), the pool notices, and calls work again without reopening
// the store.
func TestReconnect(t *testing.T) {
	url, schema := testenv.PostgresSchema(t)
	s := openStore(t, testenv.WithParam(url, "application_name", schema), storage.Options{MaxOpenConns: 4})
	ctx := t.Context()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Fill the pool with open connections.
	for range 4 {
		if _, err := s.List(ctx, domain.Filter{UserID: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if killed := terminate(t, schema); killed == 0 {
		t.Fatal("no connection of the store to terminate")
	}
	var ok bool
	for i := range 10 {
		_, _, err := s.Create(ctx, mkEvent(1, "login", time.Now()), "x")
		if err == nil {
			ok = true
			break
		}
		if !errors.Is(err, domain.ErrUnavailable) {
			t.Fatalf("call %d after the connections were killed: %v, want success or ErrUnavailable", i, err)
		}
	}
	if !ok {
		t.Fatal("the store did not recover after its connections were terminated")
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after recovery: %v", err)
	}
}

// TestClassify pins which failures mean "unavailable".
func TestClassify(t *testing.T) {
	pqErr := func(code string) error {
		return fmt.Errorf("query: %w", &pq.Error{Code: pqerror.Code(code), Message: "x"})
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("write: %w", syscall.EPIPE), true},
		{syscall.ECONNRESET, true},
		{io.ErrUnexpectedEOF, true},
		{driver.ErrBadConn, true},
		{context.DeadlineExceeded, true},
		{pqErr("57P03"), true}, // the database system is starting up
		{pqErr("53300"), true}, // too many connections
		{pqErr("57014"), true}, // statement timeout
		{pqErr("08006"), true}, // connection failure
		{pqErr("57P01"), true}, // admin shutdown
		{context.Canceled, false},
		{pqErr("23505"), false}, // unique violation
		{pqErr("42P01"), false}, // undefined table
		{pqErr("22P02"), false}, // bad input
		{errors.New("something else"), false},
	} {
		got := errors.Is(wrap(tc.err), domain.ErrUnavailable)
		if got != tc.want {
			t.Errorf("wrap(%v) unavailable = %v, want %v", tc.err, got, tc.want)
		}
		if got && !errors.Is(wrap(tc.err), tc.err) && !strings.Contains(wrap(tc.err).Error(), tc.err.Error()) {
			t.Errorf("wrap(%v) lost its cause", tc.err)
		}
	}
	if wrap(nil) != nil {
		t.Error("wrap(nil) != nil")
	}
}

// TestPingAfterTerminate: when the server drops every pooled connection
// but still answers, Ping succeeds at once, every time — readiness must not
// fail once per dead connection (issue 13).
func TestPingAfterTerminate(t *testing.T) {
	url, schema := testenv.PostgresSchema(t)
	const pool = 6
	s := openStore(t, testenv.WithParam(url, "application_name", schema), storage.Options{MaxOpenConns: pool, MaxIdleConns: pool})
	ctx := t.Context()
	// Hold pool connections at once so that the pool keeps them all.
	conns := make([]*sql.Conn, pool)
	for i := range conns {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	for _, c := range conns {
		c.Close()
	}
	if open := s.db.Stats().OpenConnections; open != pool {
		t.Fatalf("%d pooled connections, want %d", open, pool)
	}
	if killed := terminate(t, schema); killed < pool {
		t.Fatalf("terminated %d connections, want %d", killed, pool)
	}
	for i := range pool + 2 {
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping %d after every pooled connection was terminated: %v", i, err)
		}
	}
}

// terminate ends, from another session, every connection whose
// application_name is name (a store opened with it), as a server restart
// or an administrator would, and returns how many it ended.
func terminate(t *testing.T, name string) int {
	t.Helper()
	admin := openStore(t, testenv.PostgresBaseURL(), storage.Options{})
	var killed int
	if err := admin.db.GetContext(t.Context(), &killed, `
		SELECT count(*) FROM (
			SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1
		) AS k`, name); err != nil {
		t.Fatal(err)
	}
	return killed
}
