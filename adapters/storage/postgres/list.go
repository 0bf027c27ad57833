package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/lib/pq"

	"github.com/activityd/activityd/domain"
)

// maxUnionActions is how many actions of one user's filter are read as
// separate index ranges merged by time (UNION ALL of one branch per action);
// beyond it the filter is action = ANY(...).
const maxUnionActions = 4

// listQuery is one List statement and its arguments.
type listQuery struct {
	sql  string
	args []any
}

func (q *listQuery) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// buildList renders the statement for f, fetching limit+1 rows so the
// caller knows whether a next page exists. Every shape is served by an
// index ending in (time, id) — see the migrations — and ordered exactly
// like it, so PostgreSQL reads each partition's index in order, merges the
// partitions (Merge Append) and stops after the page:
//
//   - one user: (user_id, time, id), other filters checked on the rows;
//   - one user and one action, by recorded_at: (user_id, action,
//     recorded_at, id); by occurred_at: (user_id, occurred_at, id), the
//     action checked on the rows (migration 2 dropped the action index on
//     occurred_at: it cost every insert more than it saved this shape);
//   - one user and 2..4 actions by recorded_at: one branch per action on
//     that index, each limited, merged by time;
//   - every user: (recorded_at, id) (the primary key) or (occurred_at, id).
//
// A range on recorded_at (from, to, or the cursor's time) also prunes
// partitions.
func buildList(f domain.Filter) listQuery {
	var q listQuery
	tcol := "recorded_at"
	if f.TimeField == domain.ByOccurredAt {
		tcol = "occurred_at"
	}
	// Like the memory store, only an explicit Desc is newest first (a
	// validated filter always names its order).
	dir, cmpOp, boundOp := "ASC", ">", ">="
	if f.Order == domain.Desc {
		dir, cmpOp, boundOp = "DESC", "<", "<="
	}
	limit := f.PageSize()
	offset := max(f.Offset, 0)

	var common []string
	if f.UserID != 0 {
		common = append(common, "user_id = "+q.arg(f.UserID))
	}
	if f.Status != "" {
		common = append(common, "status = "+q.arg(string(f.Status)))
	}
	if !f.From.IsZero() {
		common = append(common, tcol+" >= "+q.arg(f.From.UTC())+"::timestamptz")
	}
	if !f.To.IsZero() {
		common = append(common, tcol+" < "+q.arg(f.To.UTC())+"::timestamptz")
	}
	if c := f.After; c != nil {
		t := q.arg(c.Time.UTC()) + "::timestamptz"
		common = append(common,
			// The redundant bound lets the planner prune partitions and
			// start the index range; the row comparison is the keyset.
			tcol+" "+boundOp+" "+t,
			"("+tcol+", id) "+cmpOp+" ("+t+", "+q.arg(c.ID.String())+"::uuid)")
	}
	order := " ORDER BY " + tcol + " " + dir + ", id " + dir

	where := func(extra ...string) string {
		conds := append(append([]string(nil), common...), extra...)
		if len(conds) == 0 {
			return ""
		}
		return " WHERE " + strings.Join(conds, " AND ")
	}

	switch {
	case len(f.Actions) > 1 && len(f.Actions) <= maxUnionActions && f.UserID != 0 && tcol == "recorded_at":
		inner := q.arg(limit + offset + 1)
		branches := make([]string, len(f.Actions))
		for i, a := range f.Actions {
			branches[i] = "(SELECT " + eventCols + " FROM events" +
				where("action = "+q.arg(string(a))) + order + " LIMIT " + inner + ")"
		}
		q.sql = "SELECT " + textCols + " FROM (" + strings.Join(branches, " UNION ALL ") + ") AS u" + order
	case len(f.Actions) == 1:
		q.sql = "SELECT " + textCols + " FROM events" + where("action = "+q.arg(string(f.Actions[0]))) + order
	case len(f.Actions) > 1:
		as := make(pq.StringArray, len(f.Actions))
		for i, a := range f.Actions {
			as[i] = string(a)
		}
		q.sql = "SELECT " + textCols + " FROM events" + where("action = ANY ("+q.arg(as)+"::text[])") + order
	default:
		q.sql = "SELECT " + textCols + " FROM events" + where() + order
	}
	q.sql += " LIMIT " + q.arg(limit+1)
	if offset > 0 {
		q.sql += " OFFSET " + q.arg(offset)
	}
	return q
}

// List implements ports.Events with keyset pagination.
func (s *Store) List(ctx context.Context, f domain.Filter) (domain.Page, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	q := buildList(f)
	rows, err := s.queryContext(ctx, q.sql, q.args...)
	if err != nil {
		return domain.Page{}, fmt.Errorf("postgres: list events: %w", wrap(err))
	}
	defer rows.Close()
	events := make([]domain.Event, 0, min(f.PageSize()+1, 64))
	var e domain.Event // one set of scan destinations for every row
	dest := eventDest(&e)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return domain.Page{}, fmt.Errorf("postgres: list events: %w", wrap(err))
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return domain.Page{}, fmt.Errorf("postgres: list events: %w", wrap(err))
	}
	return f.Page(events), nil
}
