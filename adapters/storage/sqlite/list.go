package sqlite

import (
	"context"
	"strings"

	"github.com/activityd/activityd/domain"
)

// listSQL builds the query for one page of f: the filters, the keyset
// condition after f.After, the order with ties broken by id, and one row
// more than the page to tell whether another page follows.
func listSQL(f domain.Filter) (string, []any) {
	col := "recorded_at"
	if f.TimeField == domain.ByOccurredAt {
		col = "occurred_at"
	}
	desc := f.Order == domain.Desc // the zero Order is ascending (domain.Filter)
	var where []string
	var args []any
	if f.UserID != 0 {
		where = append(where, "user_id = ?")
		args = append(args, f.UserID)
	}
	switch len(f.Actions) {
	case 0:
	case 1:
		where = append(where, "action = ?")
		args = append(args, string(f.Actions[0]))
	default:
		where = append(where, "action IN ("+placeholders(len(f.Actions))+")")
		for _, a := range f.Actions {
			args = append(args, string(a))
		}
	}
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, string(f.Status))
	}
	// At most one lower and one upper bound on the time column: the
	// tighter of the range and the keyset position. The keyset is a plain
	// bound on the time column plus a filter on id among the rows at the
	// cursor's instant, a form every index ending in (time, id) serves as
	// one range whatever else the filter holds.
	lower, upper := "", ""
	var lowerArgs, upperArgs []any
	if !f.From.IsZero() {
		lower, lowerArgs = col+" >= ?", []any{micros(f.From)}
	}
	if !f.To.IsZero() {
		upper, upperArgs = col+" < ?", []any{micros(f.To)}
	}
	if c := f.After; c != nil {
		t := micros(c.Time)
		switch {
		case desc && (f.To.IsZero() || t < micros(f.To)):
			upper = col + " <= ? AND (" + col + " < ? OR id < ?)"
			upperArgs = []any{t, t, c.ID[:]}
		case !desc && (f.From.IsZero() || t >= micros(f.From)):
			lower = col + " >= ? AND (" + col + " > ? OR id > ?)"
			lowerArgs = []any{t, t, c.ID[:]}
		}
	}
	if lower != "" {
		where = append(where, lower)
		args = append(args, lowerArgs...)
	}
	if upper != "" {
		where = append(where, upper)
		args = append(args, upperArgs...)
	}
	limit := f.PageSize()
	var b strings.Builder
	// Name the index: without statistics SQLite's planner sometimes picks
	// the (user, time) index for a (user, action, time range) filter. Every
	// index ends in (time, id), so the page is one range read in order,
	// without a sort, and ends after limit+1 matching rows.
	index := "events_" + col[:len(col)-len("_at")]
	switch {
	case f.UserID != 0 && len(f.Actions) == 1:
		index = "events_user_action_" + col[:len(col)-len("_at")]
	case f.UserID != 0:
		// Several actions: one range of the user's events filtered on
		// action keeps the order; an IN over (user, action, time) would
		// have to sort every match.
		index = "events_user_" + col[:len(col)-len("_at")]
	}
	b.WriteString("SELECT " + eventColumns + " FROM events INDEXED BY " + index)
	if len(where) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(where, " AND "))
	}
	dir := " ASC"
	if desc {
		dir = " DESC"
	}
	b.WriteString(" ORDER BY " + col + dir + ", id" + dir + " LIMIT ?")
	args = append(args, limit+1)
	if f.Offset > 0 {
		b.WriteString(" OFFSET ?")
		args = append(args, f.Offset)
	}
	return b.String(), args
}

// List implements ports.Events with keyset paging.
func (s *Store) List(ctx context.Context, f domain.Filter) (domain.Page, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	q, args := listSQL(f)
	var rows []eventRow
	if err := s.r.SelectContext(ctx, &rows, q, args...); err != nil {
		return domain.Page{}, mapErr("list events", err)
	}
	events := make([]domain.Event, len(rows))
	for i, r := range rows {
		e, err := r.event()
		if err != nil {
			return domain.Page{}, mapErr("list events", err)
		}
		events[i] = e
	}
	return f.Page(events), nil
}
