package sqlite

import (
	"context"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
)

// changeRow is a changes row joined to its event.
type changeRow struct {
	Position  int64  `db:"position"`
	Kind      int    `db:"kind"`
	At        int64  `db:"at"`
	Status    string `db:"c_status"`
	UpdatedAt int64  `db:"c_updated_at"`
	eventRow
}

// changesSelect reads changes from "changes c" with index hint (its
// INDEXED BY clause, or nothing) and where.
func changesSelect(hint, where string) string {
	return `SELECT c.position, c.kind, c.at, c.status AS c_status, c.updated_at AS c_updated_at,
	e.id, e.user_id, e.action, e.status, e.occurred_at, e.recorded_at, e.updated_at, e.metadata
FROM changes c ` + hint + ` JOIN events e ON e.id = c.event_id ` + where + ` ORDER BY c.position LIMIT ?`
}

// Changes implements ports.Changes. A change's event is gone only after
// retention deleted it; such a change is left out.
func (s *Store) Changes(ctx context.Context, f domain.ChangeFilter) ([]domain.Change, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var rows []changeRow
	var err error
	if f.UserID != 0 {
		err = s.r.SelectContext(ctx, &rows, changesSelect(`INDEXED BY changes_user`,
			`WHERE c.user_id = ? AND c.position > ?`), f.UserID, f.After, f.Limit)
	} else {
		err = s.r.SelectContext(ctx, &rows, changesSelect(``, `WHERE c.position > ?`), f.After, f.Limit)
	}
	if err != nil {
		return nil, mapErr("read the change feed", err)
	}
	out := make([]domain.Change, len(rows))
	for i, r := range rows {
		e, err := r.event()
		if err != nil {
			return nil, mapErr("read the change feed", err)
		}
		kind, err := storage.ChangeKind(r.Kind)
		if err != nil {
			return nil, mapErr("read the change feed", err)
		}
		e.Status, e.UpdatedAt = domain.Status(r.Status), fromMicros(r.UpdatedAt)
		out[i] = domain.Change{Position: r.Position, Kind: kind, At: fromMicros(r.At), Event: e}
	}
	return out, nil
}

// FeedHead implements ports.Changes: AUTOINCREMENT's counter, which no
// deletion lowers.
func (s *Store) FeedHead(ctx context.Context) (int64, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var head int64
	err := s.r.GetContext(ctx, &head, `SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)`)
	if err != nil {
		return 0, mapErr("read the change feed's head", err)
	}
	return head, nil
}
