package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
)

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
		if err != nil {
			return err
		}
		return s.insertChanges(ctx, tx, []newChange{{kind: storage.KindStatus, eventID: id, userID: out.UserID,
			at: micros(at), status: string(to), updatedAt: micros(at),
			action: string(out.Action), occurredAt: micros(out.OccurredAt), recordedAt: micros(out.RecordedAt)}})
	})
	if err != nil {
		return domain.Event{}, mapErr("set status of event "+id.String(), err)
	}
	return out, nil
}
