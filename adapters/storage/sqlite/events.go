package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

const selectEvent = `SELECT ` + eventColumns + ` FROM events WHERE id = ?`

// Create implements ports.Events: the event and its first history entry in
// one transaction; an existing id stores nothing and returns the stored
// event. Concurrent calls share transactions (see flushGroup).
func (s *Store) Create(ctx context.Context, e domain.Event, by string) (domain.Event, bool, error) {
	r, err := s.group.Do(ctx, storage.CreateReq{Event: e, By: by})
	if err == nil {
		err = r.Err
	}
	if err != nil {
		// Given up: the event may still be stored, and a retry with the
		// same id finds it.
		return domain.Event{}, false, mapErr("create event "+e.ID.String(), err)
	}
	return r.Event, r.Created, nil
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
		out, err = s.insertEvents(ctx, tx, es, func(int) string { return by })
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
// return the stored event with Created false. The changes of those it
// created go in through insertChanges.
func (s *Store) insertEvents(ctx context.Context, tx *sqlx.Tx, es []domain.Event, by func(i int) string) ([]ports.Created, error) {
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
	// Their changes, in the batch's order.
	changes := make([]newChange, len(created))
	for k, i := range created {
		changes[k] = recordedChange(es[i])
	}
	if err := s.insertChanges(ctx, tx, changes); err != nil {
		return nil, err
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
