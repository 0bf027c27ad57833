package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	"github.com/lib/pq"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

var _ ports.Changes = (*Store)(nil)

// The change feed (migration 00006): every write records its changes in
// the statement or transaction that makes them, numbered from feed_head,
// whose row lock — taken last, held until commit — makes positions follow
// commit order.

// feedCTEs are the CTEs that record the rows of CTE src (columns id,
// user_id, recorded_at, status, updated_at) as changes of kind kind at the
// time column at. They follow src in a WITH list; a statement with them
// must take no lock after them (none of ours does: they run after every
// other CTE, as they read src whole).
//
// A statement whose src does not read its every other write (setStatusSQL:
// the history insert) names that write as gate: CTEs nothing reads are run
// last-defined first, and reading gate makes it run before feed_head is
// locked.
func feedCTEs(src string, kind int, at string, gate ...string) string {
	cond := `EXISTS (SELECT 1 FROM ` + src + `)`
	for _, g := range gate {
		cond += ` AND EXISTS (SELECT 1 FROM ` + g + `)`
	}
	return `, head AS (
    UPDATE feed_head SET last = last + (SELECT count(*) FROM ` + src + `)
    WHERE ` + cond + `
    RETURNING last
), feed AS (
    INSERT INTO changes (position, kind, event_id, event_recorded_at, user_id, at, status, updated_at)
    SELECT h.last - count(*) OVER () + row_number() OVER (ORDER BY s.id), ` + strconv.Itoa(kind) + `,
           s.id, s.recorded_at, s.user_id, s.` + at + `, s.status, s.updated_at
    FROM ` + src + ` s CROSS JOIN head h
)`
}

// recordSQL records created events as changes, in the order given: the
// last statement of a transaction that stored them with statements
// without feedCTEs (a batch, an import).
var recordSQL = `
WITH src AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[], $4::text[], $5::timestamptz[])
        WITH ORDINALITY AS t(id, user_id, recorded_at, status, updated_at, ord)
), head AS (
    UPDATE feed_head SET last = last + cardinality($1::uuid[]) RETURNING last
)
INSERT INTO changes (position, kind, event_id, event_recorded_at, user_id, at, status, updated_at)
SELECT h.last - cardinality($1::uuid[]) + s.ord, ` + strconv.Itoa(storage.KindRecorded) + `,
       s.id, s.recorded_at, s.user_id, s.recorded_at, s.status, s.updated_at
FROM src s CROSS JOIN head h`

// recordCreated records the events out created, in order, on tx; it must
// be the transaction's last statement before COMMIT. Many rows (a batch's)
// are numbered with one UPDATE of feed_head and copied with COPY, the
// cheapest way in; a few with one recordSQL statement.
func recordCreated(ctx context.Context, tx querier, out []ports.Created) error {
	n := 0
	for _, c := range out {
		if c.Created {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if t, ok := tx.(*sql.Tx); ok && n >= copyMin {
		return copyCreated(ctx, t, out, n)
	}
	var (
		ids, recorded, statuses, updated pq.StringArray
		users                            pq.Int64Array
	)
	for _, c := range out {
		if !c.Created {
			continue
		}
		e := c.Event
		ids = append(ids, e.ID.String())
		users = append(users, e.UserID)
		recorded = append(recorded, pgTimeText(e.RecordedAt))
		statuses = append(statuses, string(e.Status))
		updated = append(updated, pgTimeText(e.UpdatedAt))
	}
	rows, err := tx.QueryContext(ctx, recordSQL, ids, users, recorded, statuses, updated)
	if err != nil {
		return fmt.Errorf("record changes: %w", wrap(err))
	}
	return wrap(rows.Close())
}

// copyCreated is recordCreated for n rows with COPY: positions
// last-n+1..last from feed_head's UPDATE (its row lock held to commit, as
// every writer's).
func copyCreated(ctx context.Context, tx *sql.Tx, out []ports.Created, n int) error {
	var last int64
	if err := tx.QueryRowContext(ctx, `UPDATE feed_head SET last = last + $1 RETURNING last`, n).Scan(&last); err != nil {
		return fmt.Errorf("record changes: %w", wrap(err))
	}
	st, err := tx.PrepareContext(ctx, `COPY changes (position, kind, event_id, event_recorded_at, user_id, at, status, updated_at) FROM STDIN`)
	if err != nil {
		return fmt.Errorf("record changes: %w", wrap(err))
	}
	pos := last - int64(n)
	for _, c := range out {
		if !c.Created {
			continue
		}
		pos++
		e := c.Event
		if _, err := st.ExecContext(ctx, pos, storage.KindRecorded, e.ID.String(), e.RecordedAt, e.UserID, e.RecordedAt, string(e.Status), e.UpdatedAt); err != nil {
			st.Close()
			return fmt.Errorf("record changes: %w", wrap(err))
		}
	}
	if _, err := st.ExecContext(ctx); err != nil {
		st.Close()
		return fmt.Errorf("record changes: %w", wrap(err))
	}
	return wrap(st.Close())
}

// changesSQL reads the feed after $1, at most $2 changes selected by
// where; each change's event by its partition key. Two statements, not one
// with an optional user, so that each keeps its own index in a generic
// plan. An erasure has no event: its columns of the LEFT JOIN are filled
// in; another change whose event is gone (retention) is left out.
func changesSQL(where string) string {
	return `
SELECT c.position, c.kind, c.at, c.status, c.updated_at, coalesce(c.detail::text, ''),
       coalesce(e.id, c.event_id), coalesce(e.user_id, c.user_id), coalesce(e.action, 'erased'), coalesce(e.status, 'PENDING'),
       coalesce(e.occurred_at, c.at), coalesce(e.recorded_at, c.at), coalesce(e.updated_at, c.at), coalesce(e.metadata, '{}')
FROM (
    SELECT * FROM changes WHERE position > $1` + where + ` ORDER BY position LIMIT $2
) c
LEFT JOIN events e ON e.id = c.event_id AND e.recorded_at = c.event_recorded_at
WHERE e.id IS NOT NULL OR c.kind = ` + strconv.Itoa(storage.KindErased) + `
ORDER BY c.position`
}

var (
	allChangesSQL  = changesSQL(``)
	userChangesSQL = changesSQL(` AND user_id = $3`)
)

// Changes implements ports.Changes.
func (s *Store) Changes(ctx context.Context, f domain.ChangeFilter) ([]domain.Change, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	query, args := allChangesSQL, []any{f.After, f.Limit}
	if f.UserID != 0 {
		query, args = userChangesSQL, append(args, f.UserID)
	}
	rows, err := s.queryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: read the change feed: %w", wrap(err))
	}
	defer rows.Close()
	out := []domain.Change{}
	for rows.Next() {
		var (
			c       domain.Change
			kind    int
			status  string
			detail  []byte
			updated = c.Event.UpdatedAt
		)
		dest := append([]any{&c.Position, &kind, timeScanner{&c.At}, &status, timeScanner{&updated}, &detail}, eventDest(&c.Event)...)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("postgres: read the change feed: %w", wrap(err))
		}
		if c.Kind, err = storage.ChangeKind(kind); err != nil {
			return nil, fmt.Errorf("postgres: read the change feed: %w", err)
		}
		if kind == storage.KindErased {
			if c.Erasure, err = storage.ParseErasure(c.Event.UserID, c.At, detail); err != nil {
				return nil, fmt.Errorf("postgres: read the change feed: %w", err)
			}
			c.Event = domain.Event{}
		} else {
			c.Event.Status, c.Event.UpdatedAt = domain.Status(status), updated
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read the change feed: %w", wrap(err))
	}
	return out, nil
}

// FeedHead implements ports.Changes.
func (s *Store) FeedHead(ctx context.Context) (int64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var head int64
	if err := s.queryRow(ctx, `SELECT last FROM feed_head`, nil, &head); err != nil {
		return 0, fmt.Errorf("postgres: read the change feed's head: %w", wrap(err))
	}
	return head, nil
}

// eraseSQL erases the metadata of user $1's events recorded in [$2, $3)
// and, when it erased some, records the erasure ($4 its time, $5 its
// detail without the count) as a change, numbered like every other.
var eraseSQL = `
WITH upd AS (
    UPDATE events SET metadata = '{}'
    WHERE user_id = $1 AND recorded_at >= $2::timestamptz AND recorded_at < $3::timestamptz AND metadata::text <> '{}'
    RETURNING 1
), n AS (
    SELECT count(*) AS n FROM upd
), head AS (
    UPDATE feed_head SET last = last + 1 WHERE (SELECT n FROM n) > 0 RETURNING last
), feed AS (
    INSERT INTO changes (position, kind, event_id, event_recorded_at, user_id, at, status, updated_at, detail)
    SELECT h.last, ` + strconv.Itoa(storage.KindErased) + `, '00000000-0000-0000-0000-000000000000', $4::timestamptz, $1,
           $4::timestamptz, '', $4::timestamptz, $5::jsonb || jsonb_build_object('count', (SELECT n FROM n))
    FROM head h
)
SELECT n FROM n`

// Erase implements ports.Erasures in one statement.
func (s *Store) Erase(ctx context.Context, e domain.Erasure) (domain.Erasure, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	from, to := any("-infinity"), any("infinity")
	if !e.From.IsZero() {
		from = e.From.UTC()
	}
	if !e.To.IsZero() {
		to = e.To.UTC()
	}
	e.Count = 0
	if err := s.db.QueryRowContext(ctx, eraseSQL, e.UserID, from, to, e.At.UTC(), storage.ErasureDetail(e)).Scan(&e.Count); err != nil {
		return domain.Erasure{}, fmt.Errorf("postgres: erase user %d: %w", e.UserID, wrap(err))
	}
	return e, nil
}
