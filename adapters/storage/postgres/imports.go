package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/lib/pq"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// importStepsSQL stores the history steps of imported events created in a
// later status than PENDING (their initial entry is derived, as for every
// event created since schema version 2).
const importStepsSQL = `
INSERT INTO event_status_history (event_id, event_recorded_at, from_status, to_status, at, changed_by)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])`

// Import implements ports.Imports: the monthly partitions the events fall
// in are made first (imported history is old, and would otherwise pile up
// in the DEFAULT partition), then CreateMany's statements and the history
// steps in one transaction.
func (s *Store) Import(ctx context.Context, es []domain.Event, by string) ([]ports.Created, error) {
	if len(es) == 0 {
		return []ports.Created{}, ctx.Err()
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	var months []time.Time
	for _, e := range es {
		if m := monthStart(e.RecordedAt); !slices.ContainsFunc(months, m.Equal) {
			months = append(months, m)
		}
	}
	if err := s.ensureMonths(ctx, months); err != nil {
		return nil, fmt.Errorf("postgres: import events: %w", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("postgres: import events: %w", wrap(err))
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	out, err := s.createMany(ctx, tx, es, func(int) string { return by })
	if err != nil {
		return nil, err
	}
	var ids, recorded, from, to, at, authors pq.StringArray
	for i, c := range out {
		if !c.Created {
			continue
		}
		for _, st := range domain.StepsTo(es[i].Status, es[i].UpdatedAt, by) {
			ids = append(ids, es[i].ID.String())
			recorded = append(recorded, pgTimeText(c.Event.RecordedAt))
			from = append(from, string(st.From))
			to = append(to, string(st.To))
			at = append(at, pgTimeText(domain.Normalize(st.At)))
			authors = append(authors, st.By)
		}
	}
	if len(ids) > 0 {
		if _, err := tx.ExecContext(ctx, importStepsSQL, ids, recorded, from, to, at, authors); err != nil {
			return nil, fmt.Errorf("postgres: import events: history: %w", wrap(err))
		}
	}
	if err := s.recordCreated(ctx, tx, out); err != nil {
		return nil, fmt.Errorf("postgres: import events: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("postgres: import events: %w", wrap(err))
	}
	return out, nil
}

// NextLegacyID implements ports.Imports.
func (s *Store) NextLegacyID(ctx context.Context) (int64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var n int64
	if err := s.db.QueryRowContext(ctx, `UPDATE legacy_ids SET last = last + 1 RETURNING last`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: next legacy id: %w", wrap(err))
	}
	return n, nil
}

// ReserveLegacyIDs implements ports.Imports.
func (s *Store) ReserveLegacyIDs(ctx context.Context, n int64) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, `UPDATE legacy_ids SET last = greatest(last, $1)`, n); err != nil {
		return fmt.Errorf("postgres: reserve legacy ids: %w", wrap(err))
	}
	return nil
}
