package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"

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
	if len(e.Metadata) == 0 {
		e.Metadata = []byte("{}")
	}
	return e
}

// createSQL stores one event in one statement: it claims the id in
// event_ids (ON CONFLICT DO NOTHING), and only if the claim succeeded
// inserts the event and its first history entry. When the id was taken by
// an event visible to this statement's snapshot, that event is returned in
// the same round trip; one committed by a concurrent create after the
// snapshot was taken is read by a second statement.
var createSQL = `
WITH claim AS (
    INSERT INTO event_ids (id, recorded_at) VALUES ($1::uuid, $6::timestamptz)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), ins AS (
    INSERT INTO events (` + eventCols + `)
    SELECT id, $2::bigint, $3::text, $4::text, $5::timestamptz, $6::timestamptz, $7::timestamptz, $8::jsonb FROM claim
    RETURNING ` + eventCols + `
), hist AS (
    INSERT INTO event_status_history (event_id, event_recorded_at, from_status, to_status, at, changed_by)
    SELECT id, $6::timestamptz, NULL, 'PENDING', $6::timestamptz, $9::text FROM claim
)
SELECT true, ` + eventCols + ` FROM ins
UNION ALL
SELECT false, ` + prefixed("e") + ` FROM events e
WHERE NOT EXISTS (SELECT 1 FROM claim)
  AND e.id = $1::uuid
  AND e.recorded_at = (SELECT recorded_at FROM event_ids WHERE id = $1::uuid)`

// createOne stores one event with createSQL, within ctx.
func (s *Store) createOne(ctx context.Context, e domain.Event, by string) (domain.Event, bool, error) {
	e = normalize(e)
	var (
		created bool
		stored  domain.Event
	)
	dest := append([]any{&created}, eventDest(&stored)...)
	err := s.queryRow(ctx, createSQL, []any{
		e.ID.String(), e.UserID, string(e.Action), string(e.Status),
		e.OccurredAt, e.RecordedAt, e.UpdatedAt, string(e.Metadata), by,
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

// createManySQL is createSQL for a batch passed as arrays (each event with
// its own author): one statement, one round trip. Ids are claimed in id order so that concurrent batches
// sharing ids cannot deadlock; a duplicate within the batch is stored once,
// as its first occurrence.
var createManySQL = `
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[],
                         $5::timestamptz[], $6::timestamptz[], $7::timestamptz[], $8::jsonb[], $9::text[])
        WITH ORDINALITY AS t(id, user_id, action, status, occurred_at, recorded_at, updated_at, metadata, changed_by, ord)
), firsts AS (
    SELECT DISTINCT ON (id) * FROM input ORDER BY id, ord
), claim AS (
    INSERT INTO event_ids (id, recorded_at)
    SELECT id, recorded_at FROM firsts ORDER BY id
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), ins AS (
    INSERT INTO events (` + eventCols + `)
    SELECT ` + prefixed("f") + ` FROM firsts f JOIN claim c ON c.id = f.id
    RETURNING ` + eventCols + `
), hist AS (
    INSERT INTO event_status_history (event_id, event_recorded_at, from_status, to_status, at, changed_by)
    SELECT i.id, i.recorded_at, NULL, 'PENDING', i.recorded_at, f.changed_by FROM ins i JOIN firsts f ON f.id = i.id
)
SELECT true, ` + eventCols + ` FROM ins
UNION ALL
SELECT false, ` + prefixed("e") + `
FROM firsts f
JOIN event_ids i ON i.id = f.id
CROSS JOIN LATERAL (` + byIDLateral + `) e
WHERE f.id NOT IN (SELECT id FROM claim)`

// byIDLateral reads the event i names, one index probe in its partition.
// OFFSET 0 keeps the planner from flattening it into a join, which on a
// large table could become a hash join over every partition.
const byIDLateral = `SELECT ` + eventCols + ` FROM events
    WHERE id = i.id AND recorded_at = i.recorded_at OFFSET 0`

// CreateMany implements ports.Events in one statement per call, inside a
// transaction so that nothing is stored when an error is returned.
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

// createMany stores es, es[i] by by(i), with one createManySQL statement
// on q (then one more reading the ids that concurrent creates took after
// it began).
func (s *Store) createMany(ctx context.Context, q querier, es []domain.Event, by func(i int) string) ([]ports.Created, error) {
	n := len(es)
	var (
		ids, actions, statuses, occurred, recorded, updated, metadata, authors = make(pq.StringArray, n),
			make(pq.StringArray, n), make(pq.StringArray, n), make(pq.StringArray, n),
			make(pq.StringArray, n), make(pq.StringArray, n), make(pq.StringArray, n), make(pq.StringArray, n)
		users = make(pq.Int64Array, n)
		first = make(map[domain.ID]int, n) // id -> index of its first occurrence
	)
	for i, e := range es {
		authors[i] = by(i)
		e = normalize(e)
		ids[i] = e.ID.String()
		users[i] = e.UserID
		actions[i] = string(e.Action)
		statuses[i] = string(e.Status)
		occurred[i] = pgTimeText(e.OccurredAt)
		recorded[i] = pgTimeText(e.RecordedAt)
		updated[i] = pgTimeText(e.UpdatedAt)
		metadata[i] = string(e.Metadata)
		if _, ok := first[e.ID]; !ok {
			first[e.ID] = i
		}
	}

	stored := make(map[domain.ID]domain.Event, len(first))
	created := make(map[domain.ID]bool, len(first))
	rows, err := q.QueryContext(ctx, createManySQL,
		ids, users, actions, statuses, occurred, recorded, updated, metadata, authors)
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
	// Ids taken by creates that committed after the statement began.
	if len(stored) < len(first) {
		var late pq.StringArray
		for id := range first {
			if _, ok := stored[id]; !ok {
				late = append(late, id.String())
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

var readManySQL = `SELECT ` + prefixed("e") + `
FROM event_ids i CROSS JOIN LATERAL (` + byIDLateral + `) e
WHERE i.id = ANY ($1::uuid[])`

func readInto(ctx context.Context, q querier, ids pq.StringArray, into map[domain.ID]domain.Event) error {
	rows, err := q.QueryContext(ctx, readManySQL, ids)
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

// getSQL finds the event's partition through event_ids: the scalar
// subquery runs first and prunes every other partition.
const getSQL = `SELECT ` + eventCols + ` FROM events
WHERE id = $1::uuid AND recorded_at = (SELECT recorded_at FROM event_ids WHERE id = $1::uuid)`

// Get implements ports.Events.
func (s *Store) Get(ctx context.Context, id domain.ID) (domain.Event, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	return s.get(ctx, id)
}

func (s *Store) get(ctx context.Context, id domain.ID) (domain.Event, error) {
	var e domain.Event
	err := s.queryRow(ctx, getSQL, []any{id.String()}, eventDest(&e)...)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return domain.Event{}, fmt.Errorf("%w: event %s", domain.ErrNotFound, id)
	case err != nil:
		return domain.Event{}, fmt.Errorf("postgres: get event: %w", wrap(err))
	}
	return e, nil
}

const historySQL = `SELECT from_status, to_status, at, changed_by FROM event_status_history
WHERE event_id = $1::uuid AND event_recorded_at = (SELECT recorded_at FROM event_ids WHERE id = $1::uuid)
ORDER BY seq`

// History implements ports.Events. Every stored event has at least its
// initial entry, so no entry means no event.
func (s *Store) History(ctx context.Context, id domain.ID) ([]domain.Transition, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.queryContext(ctx, historySQL, id.String())
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
const setStatusSQL = `
WITH cur AS (
    SELECT recorded_at FROM event_ids WHERE id = $1::uuid
), upd AS (
    UPDATE events SET status = $3::text, updated_at = $4::timestamptz
    WHERE id = $1::uuid AND recorded_at = (SELECT recorded_at FROM cur) AND status = $2::text
    RETURNING ` + eventCols + `
), hist AS (
    INSERT INTO event_status_history (event_id, event_recorded_at, from_status, to_status, at, changed_by)
    SELECT id, recorded_at, $2::text, $3::text, $4::timestamptz, $5::text FROM upd
)
SELECT true, ` + eventCols + ` FROM upd
UNION ALL
SELECT false, ` + eventCols + ` FROM events
WHERE NOT EXISTS (SELECT 1 FROM upd)
  AND id = $1::uuid AND recorded_at = (SELECT recorded_at FROM cur)`

// SetStatus implements ports.Events with one compare-and-set statement.
func (s *Store) SetStatus(ctx context.Context, id domain.ID, from, to domain.Status, at time.Time, by string) (domain.Event, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var (
		updated bool
		e       domain.Event
	)
	err := s.queryRow(ctx, setStatusSQL, []any{
		id.String(), string(from), string(to), domain.Normalize(at), by,
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
