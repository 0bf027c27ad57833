package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/activityd/activityd/domain"
)

// countJob names the counting job's row in activity_count_watermarks.
const countJob = "activity_counts"

// ComputeTimeout bounds one ComputeWindow, on the server
// (statement_timeout of its transaction) and on the client: a window of
// many millions of events takes longer than the few seconds an API
// statement may.
const ComputeTimeout = 10 * time.Minute

// ComputeWindow implements ports.Counts in one transaction:
//
//  1. a transaction-level advisory lock on the window's start (within the
//     current schema), so concurrent computations of one window, from any
//     replica or worker, run one after the other instead of colliding on
//     the primary key;
//  2. DELETE the window's earlier rows;
//  3. one INSERT ... SELECT ... GROUP BY user_id, action over the
//     recorded_at range, which prunes to the window's partitions;
//  4. advance the watermark, never backwards (ON CONFLICT ... WHERE).
func (s *Store) ComputeWindow(ctx context.Context, w domain.Window, at time.Time) (int, error) {
	if !w.Valid() {
		return 0, fmt.Errorf("postgres: compute window %s: end is not after start", w)
	}
	ctx, cancel := context.WithTimeout(ctx, ComputeTimeout+s.opTimeout)
	defer cancel()
	start, end := domain.Normalize(w.Start), domain.Normalize(w.End)
	fail := func(err error) (int, error) {
		return 0, fmt.Errorf("postgres: compute window %s: %w", w, wrap(err))
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op

	if _, err := tx.ExecContext(ctx, `SET LOCAL statement_timeout = `+strconv.FormatInt(ComputeTimeout.Milliseconds(), 10)); err != nil {
		return fail(err)
	}
	if _, err := tx.ExecContext(ctx,
		`SELECT pg_advisory_xact_lock(hashtextextended('activityd:count:' || current_schema() || ':' || $1::text, 0))`,
		strconv.FormatInt(start.UnixMicro(), 10)); err != nil {
		return fail(err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM activity_counts WHERE window_start = $1::timestamptz`, start); err != nil {
		return fail(err)
	}
	var users int
	err = tx.QueryRowContext(ctx, `
		WITH ins AS (
		    INSERT INTO activity_counts (window_start, window_end, user_id, action, count)
		    SELECT $1::timestamptz, $2::timestamptz, user_id, action, count(*)
		    FROM events
		    WHERE recorded_at >= $1::timestamptz AND recorded_at < $2::timestamptz
		    GROUP BY user_id, action
		    RETURNING user_id
		)
		SELECT count(DISTINCT user_id) FROM ins`, start, end).Scan(&users)
	if err != nil {
		return fail(err)
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO activity_count_watermarks (job, window_start, window_end, computed_at)
		VALUES ($1::text, $2::timestamptz, $3::timestamptz, $4::timestamptz)
		ON CONFLICT (job) DO UPDATE SET window_start = excluded.window_start,
		    window_end = excluded.window_end, computed_at = excluded.computed_at
		WHERE activity_count_watermarks.window_end < excluded.window_end`,
		countJob, start, end, domain.Normalize(at)); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return users, nil
}

// Watermark implements ports.Counts.
func (s *Store) Watermark(ctx context.Context) (domain.Window, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var w domain.Window
	err := s.db.QueryRowContext(ctx, `SELECT window_start, window_end FROM activity_count_watermarks WHERE job = $1::text`, countJob).
		Scan(timeScanner{&w.Start}, timeScanner{&w.End})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return domain.Window{}, nil
	case err != nil:
		return domain.Window{}, fmt.Errorf("postgres: read the counting watermark: %w", wrap(err))
	}
	return w, nil
}

// ListCounts implements ports.Counts: one GROUP BY (window_start, user_id)
// in the order of the primary key (every user) or of
// activity_counts_user (one user), so PostgreSQL reads the index in
// order, aggregates each group as it passes and stops after the page.
func (s *Store) ListCounts(ctx context.Context, f domain.CountFilter) (domain.CountPage, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var q listQuery
	var where []string
	if f.UserID != 0 {
		where = append(where, "user_id = "+q.arg(f.UserID)+"::bigint")
	}
	if !f.From.IsZero() {
		where = append(where, "window_start >= "+q.arg(f.From.UTC())+"::timestamptz")
	}
	if !f.To.IsZero() {
		where = append(where, "window_start < "+q.arg(f.To.UTC())+"::timestamptz")
	}
	dir, cmpOp := "ASC", ">"
	if f.Order == domain.Desc {
		dir, cmpOp = "DESC", "<"
	}
	if c := f.After; c != nil {
		where = append(where, "(window_start, user_id) "+cmpOp+" ("+q.arg(c.WindowStart.UTC())+"::timestamptz, "+q.arg(c.UserID)+"::bigint)")
	}
	limit := f.PageSize()
	sqlText := `SELECT window_start, max(window_end), user_id, array_agg(action), array_agg(count) FROM activity_counts`
	if len(where) > 0 {
		sqlText += " WHERE " + strings.Join(where, " AND ")
	}
	sqlText += " GROUP BY window_start, user_id ORDER BY window_start " + dir + ", user_id " + dir +
		" LIMIT " + q.arg(limit+1) + "::int"
	rows, err := s.queryContext(ctx, sqlText, q.args...)
	if err != nil {
		return domain.CountPage{}, fmt.Errorf("postgres: list counts: %w", wrap(err))
	}
	defer rows.Close()
	page := domain.CountPage{Counts: []domain.WindowCount{}}
	for rows.Next() {
		var (
			c       domain.WindowCount
			actions pq.StringArray
			counts  pq.Int64Array
		)
		if err := rows.Scan(timeScanner{&c.Start}, timeScanner{&c.End}, &c.UserID, &actions, &counts); err != nil {
			return domain.CountPage{}, fmt.Errorf("postgres: list counts: %w", wrap(err))
		}
		if len(actions) != len(counts) {
			return domain.CountPage{}, fmt.Errorf("postgres: list counts: %d actions for %d counts", len(actions), len(counts))
		}
		c.ByAction = make(map[domain.Action]int64, len(actions))
		for i, a := range actions {
			c.ByAction[domain.Action(a)] += counts[i]
			c.Total += counts[i]
		}
		page.Counts = append(page.Counts, c)
	}
	if err := rows.Err(); err != nil {
		return domain.CountPage{}, fmt.Errorf("postgres: list counts: %w", wrap(err))
	}
	return f.Page(page.Counts), nil
}
