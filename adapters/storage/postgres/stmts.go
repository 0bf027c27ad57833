package postgres

import (
	"context"
	"database/sql"
	"sync"
)

// maxPrepared bounds how many distinct statements are kept prepared: the
// fixed ones (create, get, history, set status) and the List shapes in use.
// A shape past the bound runs unprepared, which is correct, only slower.
const maxPrepared = 128

// stmtCache keeps server-side prepared statements, one per distinct SQL
// text. Each is prepared on a connection the first time it runs there
// (database/sql does that), and later executions are a single Bind/Execute
// round trip that skips parsing and, once PostgreSQL settles on a generic
// plan, planning too — which matters on a partitioned table, where
// planning grows with the number of partitions and costs more than running
// an indexed newest-50 query.
type stmtCache struct {
	mu     sync.RWMutex
	stmts  map[string]*sql.Stmt
	closed bool
}

// stmt returns the prepared statement for query, preparing it if the cache
// has room; (nil, nil) means "run it unprepared". The lock is not held
// while preparing, so a slow or unreachable server does not queue every
// caller behind one preparation.
func (s *Store) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	c := &s.stmts
	c.mu.RLock()
	st, full := c.stmts[query], c.closed || len(c.stmts) >= maxPrepared
	c.mu.RUnlock()
	if st != nil || full {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.stmts[query]; old != nil { // prepared meanwhile by another call
		st.Close()
		return old, nil
	}
	if c.closed || len(c.stmts) >= maxPrepared {
		st.Close()
		return nil, nil
	}
	if c.stmts == nil {
		c.stmts = map[string]*sql.Stmt{}
	}
	c.stmts[query] = st
	return st, nil
}

func (s *Store) queryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.stmt(ctx, query)
	switch {
	case err != nil:
		return nil, err
	case st != nil:
		return st.QueryContext(ctx, args...)
	}
	return s.db.QueryContext(ctx, query, args...)
}

// queryRow is QueryRowContext(...).Scan(dest...) through the cache.
func (s *Store) queryRow(ctx context.Context, query string, args []any, dest ...any) error {
	st, err := s.stmt(ctx, query)
	switch {
	case err != nil:
		return err
	case st != nil:
		return st.QueryRowContext(ctx, args...).Scan(dest...)
	}
	return s.db.QueryRowContext(ctx, query, args...).Scan(dest...)
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		st.Close()
	}
	c.stmts = nil
	c.closed = true
}
