package sqlite

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// Import implements ports.Imports: CreateMany's transaction, plus the
// history steps of the events created in a later status than PENDING.
func (s *Store) Import(ctx context.Context, es []domain.Event, by string) ([]ports.Created, error) {
	if len(es) == 0 {
		return []ports.Created{}, ctx.Err()
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var out []ports.Created
	err := s.writeBulkTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		if out, err = s.insertEvents(ctx, tx, es, func(int) string { return by }); err != nil {
			return err
		}
		args := make([]any, 0, 6*batchRows)
		rows := 0
		flush := func() error {
			if rows == 0 {
				return nil
			}
			q := multiRow(`INSERT INTO status_history (event_id, seq, from_status, to_status, at, "by") VALUES `,
				"(?, ?, ?, ?, ?, ?)", rows)
			_, err := tx.ExecContext(ctx, q, args...)
			args, rows = args[:0], 0
			return err
		}
		for i, c := range out {
			if !c.Created {
				continue
			}
			// seq 1 is the initial PENDING insertEvents wrote.
			for k, st := range domain.StepsTo(es[i].Status, es[i].UpdatedAt, by) {
				args = append(args, es[i].ID[:], k+2, string(st.From), string(st.To), micros(st.At), st.By)
				if rows++; rows == batchRows {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
		return flush()
	})
	if err != nil {
		return nil, mapErr(fmt.Sprintf("import %d events", len(es)), err)
	}
	return out, nil
}

// NextLegacyID implements ports.Imports.
func (s *Store) NextLegacyID(ctx context.Context) (int64, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var n int64
	err := s.writeTx(ctx, func(tx *sqlx.Tx) error {
		return tx.GetContext(ctx, &n, `UPDATE legacy_ids SET last = last + 1 RETURNING last`)
	})
	if err != nil {
		return 0, mapErr("next legacy id", err)
	}
	return n, nil
}

// ReserveLegacyIDs implements ports.Imports.
func (s *Store) ReserveLegacyIDs(ctx context.Context, n int64) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.writeTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE legacy_ids SET last = max(last, ?)`, n)
		return err
	})
	if err != nil {
		return mapErr("reserve legacy ids", err)
	}
	return nil
}
