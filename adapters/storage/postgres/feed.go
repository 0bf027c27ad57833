package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

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

// writeSQL are the statements that write changes: chained (the default),
// or not (storage.Options.Unchained).
type writeSQL struct {
	create, insertDirectFeed, insertDirectTx, createManyFeed, createManyTx, setStatus, record, erase string
	chain                                                                                            bool
}

func newWriteSQL(chain bool) *writeSQL {
	return &writeSQL{
		create:           createSQL(chain),
		insertDirectFeed: insertDirectSQL(true, chain),
		insertDirectTx:   insertDirectSQL(false, chain),
		createManyFeed:   createManySQL(true, chain),
		createManyTx:     createManySQL(false, chain),
		setStatus:        setStatusSQL(chain),
		record:           recordSQL(chain),
		erase:            eraseSQL(chain),
		chain:            chain,
	}
}

var chainedSQL, unchainedSQL = newWriteSQL(true), newWriteSQL(false)

// kindNames are the kinds as entries name them (domain.ChangeKind).
var kindNames = map[int]string{
	storage.KindRecorded: string(domain.ChangeRecorded),
	storage.KindStatus:   string(domain.ChangeStatus),
	storage.KindErased:   string(domain.ChangeErased),
}

// feedCTEs are the CTEs that record the rows of CTE src (columns id,
// user_id, action, occurred_at, recorded_at, status, updated_at and, for
// KindRecorded, metadata) as changes of kind kind at the time column at,
// chained when chain. They follow src in a WITH list; a statement with
// them must take no lock after them (none of ours does: they run after
// every other CTE, as they read src whole).
//
// A statement whose src does not read its every other write (setStatusSQL:
// the history insert) names that write as gate: CTEs nothing reads are run
// last-defined first, and reading gate makes it run before feed_head is
// locked.
func feedCTEs(src string, kind int, at string, chain bool, gate ...string) string {
	cond := `EXISTS (SELECT 1 FROM ` + src + `)`
	for _, g := range gate {
		cond += ` AND EXISTS (SELECT 1 FROM ` + g + `)`
	}
	q := `, head AS (
    UPDATE feed_head SET last = last + (SELECT count(*) FROM ` + src + `)
    WHERE ` + cond + `
    RETURNING last
)`
	if !chain {
		return q + `, feed AS (
    INSERT INTO changes (position, kind, event_id, event_recorded_at, user_id, at, status, updated_at)
    SELECT h.last - count(*) OVER () + row_number() OVER (ORDER BY s.id), ` + strconv.Itoa(kind) + `,
           s.id, s.recorded_at, s.user_id, s.` + at + `, s.status, s.updated_at
    FROM ` + src + ` s CROSS JOIN head h
)`
	}
	digest := `NULL::bytea`
	if kind == storage.KindRecorded {
		digest = `activityd_metadata_digest(s.metadata::text)`
	}
	return q + `, numbered AS (
    SELECT s.id, s.user_id, s.action, s.occurred_at, s.recorded_at, s.` + at + ` AS at, s.status, s.updated_at,
           ` + digest + ` AS digest, h.last - count(*) OVER () + row_number() OVER (ORDER BY s.id) AS position
    FROM ` + src + ` s CROSS JOIN head h
), chain AS (
    SELECT min(position) AS first, activityd_chain(array_agg(user_id ORDER BY position), array_agg(position ORDER BY position),
           array_agg(activityd_entry(position, '` + kindNames[kind] + `', user_id, id, action, status, occurred_at, recorded_at, at, digest)
                     ORDER BY position)) AS links
    FROM numbered HAVING count(*) > 0
), feed AS (
    INSERT INTO changes (position, kind, event_id, event_recorded_at, user_id, at, status, updated_at, digest, link)
    SELECT n.position, ` + strconv.Itoa(kind) + `, n.id, n.recorded_at, n.user_id, n.at, n.status, n.updated_at,
           n.digest, c.links[n.position - c.first + 1]
    FROM numbered n CROSS JOIN chain c
)`
}

// recordSQL records created events as changes, in the order given: the
// last statement of a transaction that stored them with statements
// without feedCTEs (a batch, an import). $8 are their metadata digests.
func recordSQL(chain bool) string {
	q := `
WITH src AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[], $4::text[], $5::timestamptz[],
                         $6::text[], $7::timestamptz[], $8::bytea[])
        WITH ORDINALITY AS t(id, user_id, recorded_at, status, updated_at, action, occurred_at, digest, ord)
), head AS (
    UPDATE feed_head SET last = last + cardinality($1::uuid[]) RETURNING last
), numbered AS (
    SELECT s.*, h.last - cardinality($1::uuid[]) + s.ord AS position FROM src s CROSS JOIN head h
)`
	if !chain {
		return q + `
INSERT INTO changes (position, kind, event_id, event_recorded_at, user_id, at, status, updated_at)
SELECT n.position, ` + strconv.Itoa(storage.KindRecorded) + `, n.id, n.recorded_at, n.user_id, n.recorded_at, n.status, n.updated_at
FROM numbered n`
	}
	return q + `, chain AS (
    SELECT min(position) AS first, activityd_chain(array_agg(user_id ORDER BY position), array_agg(position ORDER BY position),
           array_agg(activityd_entry(position, '` + kindNames[storage.KindRecorded] + `', user_id, id, action, status, occurred_at,
                                     recorded_at, recorded_at, digest) ORDER BY position)) AS links
    FROM numbered HAVING count(*) > 0
)
INSERT INTO changes (position, kind, event_id, event_recorded_at, user_id, at, status, updated_at, digest, link)
SELECT n.position, ` + strconv.Itoa(storage.KindRecorded) + `, n.id, n.recorded_at, n.user_id, n.recorded_at, n.status, n.updated_at,
       n.digest, c.links[n.position - c.first + 1]
FROM numbered n CROSS JOIN chain c`
}

// recordCreated records the events out created, in order, on tx; it must
// be the transaction's last statement before COMMIT. Many rows (a batch's)
// are numbered with one UPDATE of feed_head, chained with one call of
// activityd_chain and copied with COPY, the cheapest way in; a few with one
// recordSQL statement.
func (s *Store) recordCreated(ctx context.Context, tx querier, out []ports.Created) error {
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
		return s.copyCreated(ctx, t, out, n)
	}
	var (
		ids, recorded, statuses, updated, actions, occurred pq.StringArray
		users                                               pq.Int64Array
		digests                                             pq.ByteaArray
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
		actions = append(actions, string(e.Action))
		occurred = append(occurred, pgTimeText(e.OccurredAt))
		d := domain.MetadataDigest(e.Metadata)
		digests = append(digests, d[:])
	}
	rows, err := tx.QueryContext(ctx, s.w.record, ids, users, recorded, statuses, updated, actions, occurred, digests)
	if err != nil {
		return fmt.Errorf("record changes: %w", wrap(err))
	}
	return wrap(rows.Close())
}

// copyCreated is recordCreated for n rows with COPY: positions
// last-n+1..last from feed_head's UPDATE (its row lock held to commit, as
// every writer's), entries computed here, links by activityd_chain in a
// statement of its own, which therefore sees the heads the lock's previous
// holder committed.
func (s *Store) copyCreated(ctx context.Context, tx *sql.Tx, out []ports.Created, n int) error {
	var last int64
	if err := tx.QueryRowContext(ctx, `UPDATE feed_head SET last = last + $1 RETURNING last`, n).Scan(&last); err != nil {
		return fmt.Errorf("record changes: %w", wrap(err))
	}
	var (
		digests, links pq.ByteaArray
		users, poss    pq.Int64Array
		entries        pq.ByteaArray
	)
	if s.w.chain {
		pos := last - int64(n)
		for _, c := range out {
			if !c.Created {
				continue
			}
			pos++
			e := c.Event
			d := domain.MetadataDigest(e.Metadata)
			h := domain.ChainEntry{Position: pos, Kind: domain.ChangeRecorded, UserID: e.UserID, EventID: e.ID, Action: e.Action,
				Status: e.Status, OccurredAt: e.OccurredAt, RecordedAt: e.RecordedAt, At: e.RecordedAt, Digest: d}.Hash()
			digests, users, poss, entries = append(digests, d[:]), append(users, e.UserID), append(poss, pos), append(entries, h[:])
		}
		if err := tx.QueryRowContext(ctx, `SELECT activityd_chain($1::bigint[], $2::bigint[], $3::bytea[])`, users, poss, entries).Scan(&links); err != nil {
			return fmt.Errorf("chain changes: %w", wrap(err))
		}
	}
	st, err := tx.PrepareContext(ctx, `COPY changes (position, kind, event_id, event_recorded_at, user_id, at, status, updated_at, digest, link) FROM STDIN`)
	if err != nil {
		return fmt.Errorf("record changes: %w", wrap(err))
	}
	pos, i := last-int64(n), 0
	for _, c := range out {
		if !c.Created {
			continue
		}
		pos++
		e := c.Event
		var digest, link any
		if s.w.chain {
			digest, link = digests[i], links[i]
		}
		i++
		if _, err := st.ExecContext(ctx, pos, storage.KindRecorded, e.ID.String(), e.RecordedAt, e.UserID, e.RecordedAt, string(e.Status), e.UpdatedAt, digest, link); err != nil {
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
// detail without the count; $6, $7 its bounds in Unix microseconds, 0 for
// none, and $8 who asked, as its digest covers them) as a change, numbered
// and chained like every other.
func eraseSQL(chain bool) string {
	q := `
WITH upd AS (
    UPDATE events SET metadata = '{}'
    WHERE user_id = $1 AND recorded_at >= $2::timestamptz AND recorded_at < $3::timestamptz AND metadata::text <> '{}'
    RETURNING 1
), n AS (
    SELECT count(*) AS n FROM upd
), head AS (
    UPDATE feed_head SET last = last + 1 WHERE (SELECT n FROM n) > 0 RETURNING last
)`
	digest, link := `NULL::bytea`, `NULL::bytea`
	from := `head h`
	if chain {
		q += `, ent AS (
    SELECT h.last AS position, activityd_erasure_digest($1, $6::bigint, $7::bigint, (SELECT n FROM n), $8::text) AS digest FROM head h
), chain AS (
    SELECT e.position, e.digest, activityd_chain(ARRAY[$1::bigint], ARRAY[e.position], ARRAY[activityd_entry(e.position,
           '` + kindNames[storage.KindErased] + `', $1, '00000000-0000-0000-0000-000000000000', '', '', NULL, NULL, $4::timestamptz, e.digest)]) AS links
    FROM ent e
)`
		digest, link, from = `h.digest`, `h.links[1]`, `chain h`
	}
	return q + `, feed AS (
    INSERT INTO changes (position, kind, event_id, event_recorded_at, user_id, at, status, updated_at, detail, digest, link)
    SELECT ` + map[bool]string{true: "h.position", false: "h.last"}[chain] + `, ` + strconv.Itoa(storage.KindErased) + `, '00000000-0000-0000-0000-000000000000', $4::timestamptz, $1,
           $4::timestamptz, '', $4::timestamptz, $5::jsonb || jsonb_build_object('count', (SELECT n FROM n)), ` + digest + `, ` + link + `
    FROM ` + from + `
)
SELECT n FROM n`
}

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
	args := []any{e.UserID, from, to, e.At.UTC(), storage.ErasureDetail(e)}
	if s.w.chain {
		args = append(args, micros(e.From), micros(e.To), e.By)
	}
	if err := s.db.QueryRowContext(ctx, s.w.erase, args...).Scan(&e.Count); err != nil {
		return domain.Erasure{}, fmt.Errorf("postgres: erase user %d: %w", e.UserID, wrap(err))
	}
	return e, nil
}

// micros is t in Unix microseconds as entries encode it: 0 for none.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return domain.Normalize(t).UnixMicro()
}
