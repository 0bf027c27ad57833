package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// normalize returns e as it is stored: times in UTC at domain.Precision, a
// status and metadata always present.
func normalize(e domain.Event) domain.Event {
	e.RecordedAt = domain.Normalize(e.RecordedAt)
	e.OccurredAt = domain.Normalize(e.OccurredAt)
	if e.OccurredAt.IsZero() {
		e.OccurredAt = e.RecordedAt
	}
	e.UpdatedAt = domain.Normalize(e.UpdatedAt)
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = e.RecordedAt
	}
	if e.Status == "" {
		e.Status = domain.StatusPending
	}
	e.Metadata = e.MetadataOrEmpty()
	return e
}

// Where an event lives. events is partitioned on recorded_at, so finding
// an event by id needs its recorded_at. A server-made id carries it
// (domain.ID.Time, to the microsecond): such an event is stored at
// (id.Time(), id) with nothing else. An id the client chose (its own id, or
// one derived from an Idempotency-Key) is claimed in event_ids, which
// records the recorded_at it was stored at. So an id is unique when:
//   - a server-made insert finds no event_ids row for its id (and the
//     primary key (recorded_at, id) refuses a second one at its place);
//   - a client id is claimed in event_ids (ON CONFLICT DO NOTHING) only if
//     no event sits at the place its time hint names.
// Every lookup by id reads event_ids first and falls back to the hint.

// routeOf is the recorded_at of the event whose id is idArg, given that
// id's time hint (NULL when it has none): see above.
func routeOf(idArg, hintArg string) string {
	return `coalesce((SELECT recorded_at FROM event_ids WHERE id = ` + idArg + `::uuid), ` + hintArg + `::timestamptz)`
}

// hint is the time an id names, or nil: the second argument of routeOf.
func hint(id domain.ID) any {
	if t, ok := id.Time(); ok {
		return t
	}
	return nil
}

// direct reports whether e may be stored without claiming its id: its id
// names exactly its recorded_at, as a server-made id does.
func direct(e domain.Event) bool {
	t, ok := e.ID.Time()
	return ok && t.Equal(e.RecordedAt)
}

// insertCols are the columns a create writes.
const insertCols = eventCols + `, created_by`

// createSQL stores one event in one statement, whichever kind its id is
// ($11: direct). A direct event is inserted unless its id is in event_ids or
// already at its place; another one claims its id first, unless an event
// already sits at the place its hint ($10) names. When the id was taken by
// an event visible to this statement's snapshot, that event is returned in
// the same round trip; one committed by a concurrent create after the
// snapshot was taken is read by a second statement.
func createSQL(chain bool) string {
	return `
WITH existing AS MATERIALIZED (
    SELECT recorded_at FROM event_ids WHERE id = $1::uuid
    UNION ALL
    SELECT recorded_at FROM events WHERE id = $1::uuid AND recorded_at = $10::timestamptz
    LIMIT 1
), claim AS (
    INSERT INTO event_ids (id, recorded_at)
    SELECT $1::uuid, $6::timestamptz WHERE NOT $11::bool AND NOT EXISTS (SELECT 1 FROM existing)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), ins AS (
    INSERT INTO events (` + insertCols + `)
    SELECT $1::uuid, $2::bigint, $3::text, $4::text, $5::timestamptz, $6::timestamptz, $7::timestamptz, $8::json, $9::text
    WHERE CASE WHEN $11::bool THEN NOT EXISTS (SELECT 1 FROM existing) ELSE EXISTS (SELECT 1 FROM claim) END
    ON CONFLICT DO NOTHING
    RETURNING ` + eventCols + `
)` + feedCTEs("ins", storage.KindRecorded, "recorded_at", chain) + `
SELECT true, ` + eventCols + ` FROM ins
UNION ALL
SELECT false, ` + prefixed("e") + ` FROM events e
WHERE NOT EXISTS (SELECT 1 FROM ins)
  AND e.id = $1::uuid
  AND e.recorded_at = (SELECT recorded_at FROM existing)`
}

// createOne stores one event with createSQL, within ctx.
func (s *Store) createOne(ctx context.Context, e domain.Event, by string) (domain.Event, bool, error) {
	e = normalize(e)
	var (
		created bool
		stored  domain.Event
	)
	dest := append([]any{&created}, eventDest(&stored)...)
	err := s.queryRow(ctx, s.w.create, []any{
		e.ID.String(), e.UserID, string(e.Action), string(e.Status),
		e.OccurredAt, e.RecordedAt, e.UpdatedAt, string(e.Metadata), by, hint(e.ID), direct(e),
	}, dest...)
	switch {
	case err == nil:
		return stored, created, nil
	case errors.Is(err, sql.ErrNoRows):
		// Taken by a create that committed after this statement began.
		stored, err = s.get(ctx, e.ID)
		if err != nil {
			return domain.Event{}, false, fmt.Errorf("postgres: create event %s: read the stored one: %w", e.ID, err)
		}
		return stored, false, nil
	default:
		return domain.Event{}, false, fmt.Errorf("postgres: create event: %w", wrap(err))
	}
}

// insertDirectSQL stores direct events (server-made ids) as one INSERT:
// no id claim, no history row, nothing read back but the ids stored. An id
// found in event_ids, or already at its place, is left out (and handled by
// createSQL).
// The variant with feed records their changes (outside a transaction);
// without, the transaction's last statement does (recordCreated).
func insertDirectSQL(feed, chain bool) string {
	q := `
WITH ins AS (
    INSERT INTO events (` + insertCols + `)
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[],
                         $5::timestamptz[], $6::timestamptz[], $7::timestamptz[], $8::json[], $9::text[])
             AS t(id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata, created_by)
    WHERE NOT EXISTS (SELECT 1 FROM event_ids i WHERE i.id = t.id)
    ORDER BY t.id -- concurrent batches sharing ids lock them in one order: no deadlock
    ON CONFLICT DO NOTHING
    RETURNING id, user_id, action, occurred_at, recorded_at, status, updated_at, metadata
)`
	if feed {
		q += feedCTEs("ins", storage.KindRecorded, "recorded_at", chain)
	}
	return q + `
SELECT id FROM ins`
}

// createManySQL is createSQL for a batch of claimed ids passed as arrays
// (each event with its own author): one statement, one round trip. Ids are
// claimed in id order so that concurrent batches sharing ids cannot
// deadlock; a duplicate within the batch is stored once, as its first
// occurrence. The variant with feed records their changes, as
// insertDirectSQL's.
func createManySQL(feed, chain bool) string {
	q := `
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[],
                         $5::timestamptz[], $6::timestamptz[], $7::timestamptz[], $8::json[], $9::text[], $10::timestamptz[])
        WITH ORDINALITY AS t(id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata, created_by, hint, ord)
), firsts AS (
    SELECT DISTINCT ON (id) * FROM input ORDER BY id, ord
), claim AS (
    INSERT INTO event_ids (id, recorded_at)
    SELECT f.id, f.recorded_at FROM firsts f
    -- OFFSET 0: one index probe per id, never an anti-join over every partition.
    WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = f.id AND e.recorded_at = f.hint OFFSET 0)
    ORDER BY f.id
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), ins AS (
    INSERT INTO events (` + insertCols + `)
    SELECT ` + prefixed("f") + `, f.created_by FROM firsts f JOIN claim c ON c.id = f.id
    RETURNING ` + eventCols + `
)`
	if feed {
		q += feedCTEs("ins", storage.KindRecorded, "recorded_at", chain)
	}
	return q + `
SELECT true, ` + eventCols + ` FROM ins
UNION ALL
SELECT false, ` + prefixed("e") + `
FROM firsts f
CROSS JOIN LATERAL (` + byIDLateral + `) e
WHERE f.id NOT IN (SELECT id FROM claim)`
}

// byIDLateral reads the event of id f.id with hint f.hint, one index probe
// in its partition. OFFSET 0 keeps the planner from flattening it into a
// join, which on a large table could become a hash join over every
// partition.
var byIDLateral = `SELECT ` + eventCols + ` FROM events
    WHERE id = f.id AND recorded_at = ` + routeOf("f.id", "f.hint") + ` OFFSET 0`

// CreateMany implements ports.Events in as few statements as the batch's
// ids allow, inside a transaction so that nothing is stored when an error
// is returned.
func (s *Store) CreateMany(ctx context.Context, es []domain.Event, by string) ([]ports.Created, error) {
	if len(es) == 0 {
		return []ports.Created{}, nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("postgres: create events: %w", wrap(err))
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	out, err := s.createMany(ctx, tx, es, func(int) string { return by })
	if err != nil {
		return nil, err
	}
	if err := s.recordCreated(ctx, tx, out); err != nil {
		return nil, fmt.Errorf("postgres: create events: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("postgres: create events: %w", wrap(err))
	}
	return out, nil
}

// querier runs a statement: a transaction, or the store's statement cache.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// cached runs statements through the store's prepared statements.
type cached struct{ s *Store }

func (c cached) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return c.s.queryContext(ctx, query, args...)
}

// columns are events as the arrays the batch statements bind.
type columns struct {
	ids, actions, statuses, occurred, recorded, updated, metadata, authors pq.StringArray
	users                                                                  pq.Int64Array
}

func (c *columns) add(e domain.Event, by string) {
	c.ids = append(c.ids, e.ID.String())
	c.users = append(c.users, e.UserID)
	c.actions = append(c.actions, string(e.Action))
	c.statuses = append(c.statuses, string(e.Status))
	c.occurred = append(c.occurred, pgTimeText(e.OccurredAt))
	c.recorded = append(c.recorded, pgTimeText(e.RecordedAt))
	c.updated = append(c.updated, pgTimeText(e.UpdatedAt))
	c.metadata = append(c.metadata, string(e.Metadata))
	c.authors = append(c.authors, by)
}

func (c *columns) args() []any {
	return []any{c.ids, c.users, c.actions, c.statuses, c.occurred, c.recorded, c.updated, c.metadata, c.authors}
}

// createMany stores es, es[i] by by(i), on q: the direct events (server-made
// ids) with one insertDirectSQL, the others with one createManySQL (then one
// more statement reading the ids that concurrent creates took after it
// began). A direct event that insertDirectSQL left out goes the second way.
// On a transaction (q a *sql.Tx) the caller records the changes
// (recordCreated) last; otherwise each statement records its own.
func (s *Store) createMany(ctx context.Context, q querier, es []domain.Event, by func(i int) string) ([]ports.Created, error) {
	_, inTx := q.(*sql.Tx)
	insertDirect, createClaimed := s.w.insertDirectFeed, s.w.createManyFeed
	if inTx {
		insertDirect, createClaimed = s.w.insertDirectTx, s.w.createManyTx
	}
	n := len(es)
	norm := make([]domain.Event, n)
	first := make(map[domain.ID]int, n) // id -> index of its first occurrence
	var directs, claimed []int          // indexes of first occurrences, by path
	for i, e := range es {
		norm[i] = normalize(e)
		if _, ok := first[e.ID]; ok {
			continue
		}
		first[e.ID] = i
		if direct(norm[i]) {
			directs = append(directs, i)
		} else {
			claimed = append(claimed, i)
		}
	}

	stored := make(map[domain.ID]domain.Event, len(first))
	created := make(map[domain.ID]bool, len(first))
	if tx, ok := q.(*sql.Tx); ok && len(directs) >= copyMin {
		copied, err := s.copyDirect(ctx, tx, norm, directs, by)
		if err != nil {
			return nil, fmt.Errorf("postgres: create events: %w", wrap(err))
		}
		if copied {
			for _, i := range directs {
				stored[norm[i].ID], created[norm[i].ID] = norm[i], true
			}
			directs = nil
		}
	}
	if len(directs) > 0 {
		var cols columns
		for _, i := range directs {
			cols.add(norm[i], by(i))
		}
		rows, err := q.QueryContext(ctx, insertDirect, cols.args()...)
		if err != nil {
			return nil, fmt.Errorf("postgres: create events: %w", wrap(err))
		}
		for rows.Next() {
			var id domain.ID
			if err := rows.Scan(idScanner{&id}); err != nil {
				rows.Close()
				return nil, fmt.Errorf("postgres: create events: %w", wrap(err))
			}
			created[id] = true
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("postgres: create events: %w", wrap(err))
		}
		for _, i := range directs {
			if created[norm[i].ID] {
				stored[norm[i].ID] = norm[i] // exactly what a read gives back
			} else {
				claimed = append(claimed, i) // taken: find out by whom
			}
		}
	}
	if len(claimed) > 0 {
		var (
			cols  columns
			hints nullableArray
		)
		for _, i := range claimed {
			cols.add(norm[i], by(i))
			h := ""
			if t, ok := norm[i].ID.Time(); ok {
				h = pgTimeText(t)
			}
			hints = append(hints, h)
		}
		rows, err := q.QueryContext(ctx, createClaimed, append(cols.args(), hints)...)
		if err != nil {
			return nil, fmt.Errorf("postgres: create events: %w", wrap(err))
		}
		for rows.Next() {
			var (
				c bool
				e domain.Event
			)
			if err := rows.Scan(append([]any{&c}, eventDest(&e)...)...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("postgres: create events: %w", wrap(err))
			}
			stored[e.ID] = e
			created[e.ID] = c
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("postgres: create events: %w", wrap(err))
		}
	}
	// Ids taken by creates that committed after a statement began.
	if len(stored) < len(first) {
		var late []domain.ID
		for id := range first {
			if _, ok := stored[id]; !ok {
				late = append(late, id)
			}
		}
		if err := readInto(ctx, q, late, stored); err != nil {
			return nil, fmt.Errorf("postgres: create events: %w", err)
		}
		for id := range first {
			if _, ok := stored[id]; !ok {
				return nil, fmt.Errorf("postgres: create events: event %s vanished while being created", id)
			}
		}
	}
	out := make([]ports.Created, n)
	for i, e := range es {
		out[i] = ports.Created{Event: stored[e.ID], Created: created[e.ID] && first[e.ID] == i}
		if first[e.ID] != i { // a repeated id: its own copy, not shared bytes
			out[i].Event.Metadata = bytes.Clone(out[i].Event.Metadata)
		}
	}
	return out, nil
}

// copyMin is the smallest number of direct events a transaction stores
// with COPY rather than one INSERT: below it the extra round trips cost
// more than COPY saves.
const copyMin = 64

// copyDirect stores the direct events es[idx] with COPY, the fastest way
// into PostgreSQL, inside tx. COPY cannot skip a row, so it runs under a
// savepoint: if an id is taken after all (already at its place, or claimed
// in event_ids by a client), or a row is refused, everything it copied is
// rolled back and it reports false, and the caller stores those events
// statement by statement, which sorts them out (or reports the error as it
// always has). An error is returned only when the savepoint cannot be
// rolled back to (the connection or the context is gone).
func (s *Store) copyDirect(ctx context.Context, tx *sql.Tx, es []domain.Event, idx []int, by func(int) string) (bool, error) {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT copy_direct"); err != nil {
		return false, err
	}
	undo := func(cause error) (bool, error) {
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT copy_direct"); err != nil {
			return false, errors.Join(cause, err)
		}
		return false, nil
	}
	st, err := tx.PrepareContext(ctx, `COPY events (`+insertCols+`) FROM STDIN`)
	if err != nil {
		return undo(err)
	}
	ids := make(pq.StringArray, len(idx))
	for k, i := range idx {
		e := es[i]
		ids[k] = e.ID.String()
		if _, err := st.ExecContext(ctx, ids[k], e.UserID, string(e.Action), string(e.Status),
			e.OccurredAt, e.RecordedAt, e.UpdatedAt, string(e.Metadata), by(i)); err != nil {
			st.Close()
			return undo(err)
		}
	}
	if _, err := st.ExecContext(ctx); err != nil {
		st.Close()
		return undo(err)
	}
	if err := st.Close(); err != nil {
		return undo(err)
	}
	var claimed bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM event_ids WHERE id = ANY ($1::uuid[]))`, ids).Scan(&claimed); err != nil {
		return false, err
	}
	if claimed {
		return undo(nil)
	}
	return true, nil
}

// nullableArray binds a text array whose empty strings are NULL.
type nullableArray []string

func (a nullableArray) Value() (driver.Value, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, s := range a {
		if i > 0 {
			b.WriteByte(',')
		}
		if s == "" {
			b.WriteString("NULL")
		} else {
			b.WriteByte('"')
			b.WriteString(s) // times and uuids: nothing to escape
			b.WriteByte('"')
		}
	}
	b.WriteByte('}')
	return b.String(), nil
}

var readManySQL = `SELECT ` + prefixed("e") + `
FROM unnest($1::uuid[], $2::timestamptz[]) AS f(id, hint) CROSS JOIN LATERAL (` + byIDLateral + `) e`

func readInto(ctx context.Context, q querier, ids []domain.ID, into map[domain.ID]domain.Event) error {
	strs, hints := make(pq.StringArray, len(ids)), make(nullableArray, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
		if t, ok := id.Time(); ok {
			hints[i] = pgTimeText(t)
		}
	}
	rows, err := q.QueryContext(ctx, readManySQL, strs, hints)
	if err != nil {
		return wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		var e domain.Event
		if err := rows.Scan(eventDest(&e)...); err != nil {
			return wrap(err)
		}
		into[e.ID] = e
	}
	return wrap(rows.Err())
}

// getSQL finds the event's partition through event_ids or its id's time:
// the scalar subquery runs first and prunes every other partition.
var getSQL = `SELECT ` + eventCols + ` FROM events
WHERE id = $1::uuid AND recorded_at = ` + routeOf("$1", "$2")

// Get implements ports.Events.
func (s *Store) Get(ctx context.Context, id domain.ID) (domain.Event, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	return s.get(ctx, id)
}

func (s *Store) get(ctx context.Context, id domain.ID) (domain.Event, error) {
	var e domain.Event
	err := s.queryRow(ctx, getSQL, []any{id.String(), hint(id)}, eventDest(&e)...)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return domain.Event{}, fmt.Errorf("%w: event %s", domain.ErrNotFound, id)
	case err != nil:
		return domain.Event{}, fmt.Errorf("postgres: get event: %w", wrap(err))
	}
	return e, nil
}

// historySQL reads an event's transitions. Its first entry is derived from
// the event (recorded_at, created_by) unless it was stored: events created
// under schema version 1 (created_by NULL) have it stored.
var historySQL = `
WITH cur AS MATERIALIZED (SELECT ` + routeOf("$1", "$2") + ` AS rt)
SELECT from_status, to_status, at, changed_by FROM (
    SELECT NULL::text AS from_status, 'PENDING'::text AS to_status, recorded_at AS at, created_by AS changed_by, 0::bigint AS seq
    FROM events WHERE id = $1::uuid AND recorded_at = (SELECT rt FROM cur) AND created_by IS NOT NULL
    UNION ALL
    SELECT from_status, to_status, at, changed_by, seq FROM event_status_history
    WHERE event_id = $1::uuid AND event_recorded_at = (SELECT rt FROM cur)
) h ORDER BY seq`

// History implements ports.Events. Every stored event has at least its
// initial entry, so no entry means no event.
func (s *Store) History(ctx context.Context, id domain.ID) ([]domain.Transition, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.queryContext(ctx, historySQL, id.String(), hint(id))
	if err != nil {
		return nil, fmt.Errorf("postgres: event history: %w", wrap(err))
	}
	defer rows.Close()
	var out []domain.Transition
	for rows.Next() {
		var t domain.Transition
		if err := rows.Scan(statusScanner{&t.From}, statusScanner{&t.To}, timeScanner{&t.At}, &t.By); err != nil {
			return nil, fmt.Errorf("postgres: event history: %w", wrap(err))
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: event history: %w", wrap(err))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: event %s", domain.ErrNotFound, id)
	}
	return out, nil
}

// setStatusSQL is the compare-and-set: the UPDATE only matches while the
// status is still $2 (a concurrent transition that committed first makes it
// match nothing, PostgreSQL re-checking the row after waiting for its
// lock), and the history entry is inserted by the same statement, so both
// or neither are stored. The second branch returns the event as this
// statement's snapshot saw it when the UPDATE matched nothing: a row there
// means a conflict, no row means no such event.
func setStatusSQL(chain bool) string {
	return `
WITH cur AS MATERIALIZED (
    SELECT ` + routeOf("$1", "$6") + ` AS recorded_at
), upd AS (
    UPDATE events SET status = $3::text, updated_at = $4::timestamptz
    WHERE id = $1::uuid AND recorded_at = (SELECT recorded_at FROM cur) AND status = $2::text
    RETURNING ` + eventCols + `
), hist AS (
    INSERT INTO event_status_history (event_id, event_recorded_at, from_status, to_status, at, changed_by)
    SELECT id, recorded_at, $2::text, $3::text, $4::timestamptz, $5::text FROM upd
    RETURNING 1
)` + feedCTEs("upd", storage.KindStatus, "updated_at", chain, "hist") + `
SELECT true, ` + eventCols + ` FROM upd
UNION ALL
SELECT false, ` + eventCols + ` FROM events
WHERE NOT EXISTS (SELECT 1 FROM upd)
  AND id = $1::uuid AND recorded_at = (SELECT recorded_at FROM cur)`
}

// SetStatus implements ports.Events with one compare-and-set statement.
func (s *Store) SetStatus(ctx context.Context, id domain.ID, from, to domain.Status, at time.Time, by string) (domain.Event, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var (
		updated bool
		e       domain.Event
	)
	err := s.queryRow(ctx, s.w.setStatus, []any{
		id.String(), string(from), string(to), domain.Normalize(at), by, hint(id),
	}, append([]any{&updated}, eventDest(&e)...)...)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return domain.Event{}, fmt.Errorf("%w: event %s", domain.ErrNotFound, id)
	case err != nil:
		return domain.Event{}, fmt.Errorf("postgres: set status: %w", wrap(err))
	case !updated:
		return domain.Event{}, fmt.Errorf("%w: event %s is %s, not %s", domain.ErrStatusConflict, id, e.Status, from)
	}
	return e, nil
}

// CountWindow implements ports.Events. The range on recorded_at prunes to
// the window's partitions and reads the primary key's range.
func (s *Store) CountWindow(ctx context.Context, start, end time.Time) ([]domain.UserCount, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, `
		SELECT user_id, action, count(*) FROM events
		WHERE recorded_at >= $1::timestamptz AND recorded_at < $2::timestamptz
		GROUP BY user_id, action
		ORDER BY user_id, action`, start.UTC(), end.UTC())
	if err != nil {
		return nil, fmt.Errorf("postgres: count window: %w", wrap(err))
	}
	defer rows.Close()
	out := []domain.UserCount{}
	for rows.Next() {
		var (
			user   int64
			action string
			n      int64
		)
		if err := rows.Scan(&user, &action, &n); err != nil {
			return nil, fmt.Errorf("postgres: count window: %w", wrap(err))
		}
		if len(out) == 0 || out[len(out)-1].UserID != user {
			out = append(out, domain.UserCount{UserID: user, ByAction: map[domain.Action]int64{}})
		}
		c := &out[len(out)-1]
		c.Total += n
		c.ByAction[domain.Action(action)] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: count window: %w", wrap(err))
	}
	return out, nil
}
