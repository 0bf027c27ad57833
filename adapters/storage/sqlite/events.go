package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"go.opentelemetry.io/otel/trace"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

const eventColumns = `id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata`

// eventRow is an events row as stored.
type eventRow struct {
	ID         []byte `db:"id"`
	UserID     int64  `db:"user_id"`
	Action     string `db:"action"`
	Status     string `db:"status"`
	OccurredAt int64  `db:"occurred_at"`
	RecordedAt int64  `db:"recorded_at"`
	UpdatedAt  int64  `db:"updated_at"`
	Metadata   []byte `db:"metadata"`
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func metadataOf(e domain.Event) []byte {
	if len(e.Metadata) == 0 {
		return []byte("{}")
	}
	return e.Metadata
}

func (r eventRow) event() (domain.Event, error) {
	var e domain.Event
	if len(r.ID) != len(e.ID) {
		return e, fmt.Errorf("event id of %d bytes", len(r.ID))
	}
	copy(e.ID[:], r.ID)
	e.UserID = r.UserID
	e.Action = domain.Action(r.Action)
	e.Status = domain.Status(r.Status)
	e.OccurredAt = fromMicros(r.OccurredAt)
	e.RecordedAt = fromMicros(r.RecordedAt)
	e.UpdatedAt = fromMicros(r.UpdatedAt)
	e.Metadata = r.Metadata
	return e, nil
}

// stored returns e as it reads back once stored: times in UTC at
// microsecond precision, metadata never empty.
func stored(e domain.Event) domain.Event {
	e.OccurredAt = fromMicros(micros(e.OccurredAt))
	e.RecordedAt = fromMicros(micros(e.RecordedAt))
	e.UpdatedAt = fromMicros(micros(e.UpdatedAt))
	e.Metadata = append([]byte(nil), metadataOf(e)...)
	return e
}

func eventArgs(args []any, e domain.Event) []any {
	return append(args, e.ID[:], e.UserID, string(e.Action), string(e.Status),
		micros(e.OccurredAt), micros(e.RecordedAt), micros(e.UpdatedAt), string(metadataOf(e)))
}

const selectEvent = `SELECT ` + eventColumns + ` FROM events WHERE id = ?`

// Create implements ports.Events: the event and its first history entry in
// one transaction; an existing id stores nothing and returns the stored
// event. Concurrent calls share transactions (see flushGroup).
func (s *Store) Create(ctx context.Context, e domain.Event, by string) (domain.Event, bool, error) {
	r, err := s.group.Do(ctx, createReq{e: e, by: by})
	if err == nil {
		err = r.err
	}
	if err != nil {
		// Given up: the event may still be stored, and a retry with the
		// same id finds it.
		return domain.Event{}, false, mapErr("create event "+e.ID.String(), err)
	}
	return r.c.Event, r.c.Created, nil
}

// maxGroup bounds how many concurrent Creates share one transaction.
const maxGroup = 256

// createReq is what a Create asks of the group commit.
type createReq struct {
	e  domain.Event
	by string
}

// createRes is a Create's answer: its own error, one request of a group
// failing alone.
type createRes struct {
	c   ports.Created
	err error
}

// groupTurn waits for a group's turn at the write connection, for as long
// as its transaction may take.
func (s *Store) groupTurn() (release func(), err error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.groupTimeout())
	defer cancel()
	if err := s.turns.take(ctx, false); err != nil {
		return nil, fmt.Errorf("wait for the write connection: %w", err)
	}
	return func() { s.turns.done(false) }, nil
}

// groupTimeout bounds a transaction shared by requests with deadlines of
// their own: the statement timeout, or the busy timeout, not any one of
// theirs.
func (s *Store) groupTimeout() time.Duration { return cmp.Or(s.timeout, s.busy) + time.Second }

// flushGroup stores a group of Creates (storage.Group, one group at a
// time) in one transaction with one multi-row INSERT, so concurrent
// creates share statements and commits instead of queueing for the single
// write connection one by one; a lone request is stored at once, with no
// added wait. Before it gathers its requests a group takes a turn at the
// write connection as a small write (behind at most one batch, see
// writeTurns), so every create that arrives meanwhile joins it; it holds
// the turn while it is stored.
func (s *Store) flushGroup(calls []storage.Call[createReq]) []createRes {
	var ctx context.Context
	var cancel context.CancelFunc
	if len(calls) == 1 {
		ctx, cancel = s.opCtx(calls[0].Ctx)
	} else {
		ctx, cancel = context.WithTimeout(context.Background(), s.groupTimeout())
	}
	defer cancel()
	var span trace.Span
	if len(calls) > 1 {
		ctx, span = s.groupSpan(ctx, calls)
	}
	es := make([]domain.Event, len(calls))
	for i, c := range calls {
		es[i] = c.Req.e
	}
	var out []ports.Created
	err := s.writeTxTurn(ctx, func(tx *sqlx.Tx) error {
		if s.onTurn != nil {
			s.onTurn(true)
		}
		var err error
		out, err = insertEvents(ctx, tx, es, func(i int) string { return calls[i].Req.by })
		return err
	})
	if span != nil {
		storage.EndSpan(span, err)
	}
	res := make([]createRes, len(calls))
	switch {
	case err == nil:
		for i := range res {
			res[i].c = out[i]
		}
	case len(calls) == 1 || unavailable(err) || ctx.Err() != nil:
		for i := range res {
			res[i].err = err
		}
	default:
		// One event the database refused must not fail the others: store
		// each alone.
		for i, c := range calls {
			res[i] = s.createAlone(c)
		}
	}
	return res
}

// createAlone stores one request's event in a transaction of its own,
// within its own context; the caller holds a turn.
func (s *Store) createAlone(c storage.Call[createReq]) createRes {
	ctx, cancel := s.opCtx(c.Ctx)
	defer cancel()
	var out []ports.Created
	err := s.writeTxTurn(ctx, func(tx *sqlx.Tx) error {
		var err error
		out, err = insertEvents(ctx, tx, []domain.Event{c.Req.e}, func(int) string { return c.Req.by })
		return err
	})
	if err != nil {
		return createRes{err: err}
	}
	return createRes{c: out[0]}
}

// batchRows is how many events one multi-row INSERT carries (8 parameters
// each, well under SQLite's limit of 32766).
const batchRows = 500

// CreateMany implements ports.Events: one transaction, one multi-row INSERT
// per batchRows events, one more for their history entries.
func (s *Store) CreateMany(ctx context.Context, es []domain.Event, by string) ([]ports.Created, error) {
	if len(es) == 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return []ports.Created{}, nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var out []ports.Created
	err := s.writeBulkTx(ctx, func(tx *sqlx.Tx) error {
		if s.onTurn != nil {
			s.onTurn(false)
		}
		var err error
		out, err = insertEvents(ctx, tx, es, func(int) string { return by })
		return err
	})
	if err != nil {
		return nil, mapErr(fmt.Sprintf("create %d events", len(es)), err)
	}
	return out, nil
}

// insertEvents stores es (event i with its first history entry by by(i))
// in tx and returns what each one stored or found. The first occurrence of
// an id not yet stored creates it; later ones, and ids already stored,
// return the stored event with Created false.
func insertEvents(ctx context.Context, tx *sqlx.Tx, es []domain.Event, by func(i int) string) ([]ports.Created, error) {
	out := make([]ports.Created, len(es))
	inserted := make(map[domain.ID]bool, len(es))
	args := make([]any, 0, 8*min(len(es), batchRows))
	for start := 0; start < len(es); start += batchRows {
		chunk := es[start:min(start+batchRows, len(es))]
		args = args[:0]
		for _, e := range chunk {
			args = eventArgs(args, e)
		}
		q := multiRow(`INSERT INTO events (`+eventColumns+`) VALUES `, "(?, ?, ?, ?, ?, ?, ?, ?)", len(chunk)) +
			` ON CONFLICT (id) DO NOTHING RETURNING id`
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var raw []byte
			if err := rows.Scan(&raw); err != nil {
				rows.Close()
				return nil, err
			}
			var id domain.ID
			copy(id[:], raw)
			inserted[id] = true
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}

	first := make(map[domain.ID]int, len(inserted))
	var created []int
	var missing []domain.ID
	for i, e := range es {
		if !inserted[e.ID] {
			missing = append(missing, e.ID)
			continue
		}
		if j, seen := first[e.ID]; seen {
			out[i] = ports.Created{Event: stored(out[j].Event)}
			continue
		}
		first[e.ID] = i
		out[i] = ports.Created{Event: stored(e), Created: true}
		created = append(created, i)
	}
	for start := 0; start < len(created); start += batchRows {
		chunk := created[start:min(start+batchRows, len(created))]
		args = args[:0]
		for _, i := range chunk {
			// The initial transition is recorded at the event's recorded_at.
			args = append(args, es[i].ID[:], micros(es[i].RecordedAt), by(i))
		}
		q := multiRow(`INSERT INTO status_history (event_id, seq, from_status, to_status, at, "by") VALUES `,
			"(?, 1, NULL, 'PENDING', ?, ?)", len(chunk))
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return nil, err
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	existing := make(map[domain.ID]domain.Event, len(missing))
	for start := 0; start < len(missing); start += batchRows {
		chunk := missing[start:min(start+batchRows, len(missing))]
		args = args[:0]
		for _, id := range chunk {
			args = append(args, id[:])
		}
		var rows []eventRow
		q := `SELECT ` + eventColumns + ` FROM events WHERE id IN (` + placeholders(len(chunk)) + `)`
		if err := tx.SelectContext(ctx, &rows, q, args...); err != nil {
			return nil, err
		}
		for _, r := range rows {
			e, err := r.event()
			if err != nil {
				return nil, err
			}
			existing[e.ID] = e
		}
	}
	for i, e := range es {
		if inserted[e.ID] {
			continue
		}
		st, ok := existing[e.ID]
		if !ok {
			return nil, fmt.Errorf("event %s was neither inserted nor found", e.ID)
		}
		out[i] = ports.Created{Event: stored(st)} // stored copies the metadata
	}
	return out, nil
}

// multiRow returns head followed by n copies of row, comma-separated.
func multiRow(head, row string, n int) string {
	var b strings.Builder
	b.Grow(len(head) + n*(len(row)+2))
	b.WriteString(head)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

type queryer interface {
	GetContext(ctx context.Context, dest any, query string, args ...any) error
}

func getEvent(ctx context.Context, q queryer, id domain.ID) (domain.Event, error) {
	var r eventRow
	if err := q.GetContext(ctx, &r, selectEvent, id[:]); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return domain.Event{}, fmt.Errorf("%w: event %s", domain.ErrNotFound, id)
		}
		return domain.Event{}, err
	}
	return r.event()
}

// Get implements ports.Events.
func (s *Store) Get(ctx context.Context, id domain.ID) (domain.Event, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	e, err := getEvent(ctx, s.r, id)
	if err != nil {
		return domain.Event{}, mapErr("get event "+id.String(), err)
	}
	return e, nil
}

type historyRow struct {
	From sql.NullString `db:"from_status"`
	To   string         `db:"to_status"`
	At   int64          `db:"at"`
	By   string         `db:"by"`
}

// History implements ports.Events.
func (s *Store) History(ctx context.Context, id domain.ID) ([]domain.Transition, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var rows []historyRow
	err := s.r.SelectContext(ctx, &rows,
		`SELECT from_status, to_status, at, "by" FROM status_history WHERE event_id = ? ORDER BY seq`, id[:])
	if err != nil {
		return nil, mapErr("event history "+id.String(), err)
	}
	if len(rows) == 0 {
		// Every event has its first entry, written with it: no entry, no event.
		return nil, fmt.Errorf("%w: event %s", domain.ErrNotFound, id)
	}
	out := make([]domain.Transition, len(rows))
	for i, r := range rows {
		out[i] = domain.Transition{From: domain.Status(r.From.String), To: domain.Status(r.To), At: fromMicros(r.At), By: r.By}
	}
	return out, nil
}

// listSQL builds the query for one page of f: the filters, the keyset
// condition after f.After, the order with ties broken by id, and one row
// more than the page to tell whether another page follows.
func listSQL(f domain.Filter) (string, []any, int) {
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
	limit := f.Limit
	if limit <= 0 {
		limit = domain.DefaultLimit
	}
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
	return b.String(), args, limit
}

// List implements ports.Events with keyset paging.
func (s *Store) List(ctx context.Context, f domain.Filter) (domain.Page, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	q, args, limit := listSQL(f)
	var rows []eventRow
	if err := s.r.SelectContext(ctx, &rows, q, args...); err != nil {
		return domain.Page{}, mapErr("list events", err)
	}
	var page domain.Page
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	page.Events = make([]domain.Event, len(rows))
	for i, r := range rows {
		e, err := r.event()
		if err != nil {
			return domain.Page{}, mapErr("list events", err)
		}
		page.Events[i] = e
	}
	if more {
		page.Next = f.CursorAfter(page.Events[limit-1])
	}
	return page, nil
}

// SetStatus implements ports.Events as a compare-and-set on the status
// column, with the history entry in the same transaction.
func (s *Store) SetStatus(ctx context.Context, id domain.ID, from, to domain.Status, at time.Time, by string) (domain.Event, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var out domain.Event
	err := s.writeTx(ctx, func(tx *sqlx.Tx) error {
		var r eventRow
		err := tx.GetContext(ctx, &r, `UPDATE events SET status = ?, updated_at = ? WHERE id = ? AND status = ? RETURNING `+eventColumns,
			string(to), micros(at), id[:], string(from))
		if errors.Is(err, sql.ErrNoRows) {
			var exists bool
			if err := tx.GetContext(ctx, &exists, `SELECT EXISTS (SELECT 1 FROM events WHERE id = ?)`, id[:]); err != nil {
				return err
			}
			if !exists {
				return fmt.Errorf("%w: event %s", domain.ErrNotFound, id)
			}
			return fmt.Errorf("%w: event %s is no longer %s", domain.ErrStatusConflict, id, from)
		}
		if err != nil {
			return err
		}
		if out, err = r.event(); err != nil {
			return err
		}
		var fromArg any
		if from != "" {
			fromArg = string(from)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO status_history (event_id, seq, from_status, to_status, at, "by")
			SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ? FROM status_history WHERE event_id = ?`,
			id[:], fromArg, string(to), micros(at), by, id[:])
		return err
	})
	if err != nil {
		return domain.Event{}, mapErr("set status of event "+id.String(), err)
	}
	return out, nil
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
