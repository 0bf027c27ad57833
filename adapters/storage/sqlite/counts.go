package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/activityd/activityd/domain"
)

// countJob names the counting job's row in activity_count_watermarks.
const countJob = "activity_counts"

// ComputeWindow implements ports.Counts in one write transaction (BEGIN
// IMMEDIATE, on the single write connection), so concurrent computations
// of a window, in this process or another, run one after the other.
func (s *Store) ComputeWindow(ctx context.Context, w domain.Window, at time.Time) (int, error) {
	if !w.Valid() {
		return 0, fmt.Errorf("sqlite: compute window %s: end is not after start", w)
	}
	start, end := micros(domain.Normalize(w.Start)), micros(domain.Normalize(w.End))
	var users int
	err := s.writeBulkTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM activity_counts WHERE window_start = ?`, start); err != nil {
			return err
		}
		// events_recorded (recorded_at, id) serves the range.
		if _, err := tx.ExecContext(ctx, `INSERT INTO activity_counts (window_start, window_end, user_id, action, count)
			SELECT ?, ?, user_id, action, COUNT(*) FROM events INDEXED BY events_recorded
			WHERE recorded_at >= ? AND recorded_at < ?
			GROUP BY user_id, action`, start, end, start, end); err != nil {
			return err
		}
		if err := tx.GetContext(ctx, &users, `SELECT COUNT(DISTINCT user_id) FROM activity_counts WHERE window_start = ?`, start); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO activity_count_watermarks (job, window_start, window_end, computed_at)
			VALUES (?, ?, ?, ?)
			ON CONFLICT (job) DO UPDATE SET window_start = excluded.window_start,
				window_end = excluded.window_end, computed_at = excluded.computed_at
			WHERE activity_count_watermarks.window_end < excluded.window_end`,
			countJob, start, end, micros(at))
		return err
	})
	if err != nil {
		return 0, mapErr("compute window "+w.String(), err)
	}
	return users, nil
}

// Watermark implements ports.Counts.
func (s *Store) Watermark(ctx context.Context) (domain.Window, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var start, end int64
	err := s.r.QueryRowContext(ctx, `SELECT window_start, window_end FROM activity_count_watermarks WHERE job = ?`, countJob).
		Scan(&start, &end)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return domain.Window{}, nil
	case err != nil:
		return domain.Window{}, mapErr("read the counting watermark", err)
	}
	return domain.Window{Start: fromMicros(start), End: fromMicros(end)}, nil
}

// ListCounts implements ports.Counts: one GROUP BY over the primary key
// (or, for one user, activity_counts_user) in the listing's order. Actions
// never hold '=' or ',', so each group's counts travel as one
// "action=n,action=n" string.
func (s *Store) ListCounts(ctx context.Context, f domain.CountFilter) (domain.CountPage, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var (
		where []string
		args  []any
	)
	if f.UserID != 0 {
		where = append(where, "user_id = ?")
		args = append(args, f.UserID)
	}
	if !f.From.IsZero() {
		where = append(where, "window_start >= ?")
		args = append(args, micros(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "window_start < ?")
		args = append(args, micros(f.To))
	}
	dir, cmpOp := "ASC", ">"
	if f.Order == domain.Desc {
		dir, cmpOp = "DESC", "<"
	}
	if c := f.After; c != nil {
		where = append(where, "(window_start, user_id) "+cmpOp+" (?, ?)")
		args = append(args, micros(c.WindowStart), c.UserID)
	}
	limit := f.PageSize()
	q := `SELECT window_start, MAX(window_end), user_id, group_concat(action || '=' || count, ',')
		FROM activity_counts`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " GROUP BY window_start, user_id ORDER BY window_start " + dir + ", user_id " + dir + " LIMIT ?"
	args = append(args, limit+1)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return domain.CountPage{}, mapErr("list counts", err)
	}
	defer rows.Close()
	page := domain.CountPage{Counts: []domain.WindowCount{}}
	for rows.Next() {
		var (
			start, end, user int64
			pairs            string
		)
		if err := rows.Scan(&start, &end, &user, &pairs); err != nil {
			return domain.CountPage{}, mapErr("list counts", err)
		}
		c := domain.WindowCount{Start: fromMicros(start), End: fromMicros(end),
			UserCount: domain.UserCount{UserID: user, ByAction: map[domain.Action]int64{}}}
		for _, p := range strings.Split(pairs, ",") {
			a, n, ok := strings.Cut(p, "=")
			v, err := strconv.ParseInt(n, 10, 64)
			if !ok || err != nil {
				return domain.CountPage{}, fmt.Errorf("sqlite: list counts: bad group %q", pairs)
			}
			c.ByAction[domain.Action(a)] += v
			c.Total += v
		}
		page.Counts = append(page.Counts, c)
	}
	if err := rows.Err(); err != nil {
		return domain.CountPage{}, mapErr("list counts", err)
	}
	return f.Page(page.Counts), nil
}

// CountWindow implements ports.Events.
func (s *Store) CountWindow(ctx context.Context, start, end time.Time) ([]domain.UserCount, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, `SELECT user_id, action, COUNT(*) FROM events
		WHERE recorded_at >= ? AND recorded_at < ? GROUP BY user_id, action ORDER BY user_id, action`,
		micros(start), micros(end))
	if err != nil {
		return nil, mapErr("count window", err)
	}
	defer rows.Close()
	out := []domain.UserCount{}
	for rows.Next() {
		var user, n int64
		var action string
		if err := rows.Scan(&user, &action, &n); err != nil {
			return nil, mapErr("count window", err)
		}
		if len(out) == 0 || out[len(out)-1].UserID != user {
			out = append(out, domain.UserCount{UserID: user, ByAction: map[domain.Action]int64{}})
		}
		c := &out[len(out)-1]
		c.Total += n
		c.ByAction[domain.Action(action)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr("count window", err)
	}
	return out, nil
}
