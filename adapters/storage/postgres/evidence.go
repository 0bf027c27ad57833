package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

var _ ports.Evidence = (*Store)(nil)

// chainRecordsSQL reads the chain records after $1, at most $2, selected
// by where: each change with its event as stored now (none when gone).
func chainRecordsSQL(where string) string {
	return `
SELECT c.position, c.kind, c.user_id, c.event_id, c.at, c.status, coalesce(c.detail::text, ''),
       coalesce(c.digest, ''::bytea), coalesce(c.link, ''::bytea), e.id IS NULL,
       e.id IS NULL AND c.kind <> ` + strconv.Itoa(storage.KindErased) + ` AND c.event_recorded_at < coalesce((SELECT before FROM pruned_before), '-infinity'),
       coalesce(e.action, ''), coalesce(e.occurred_at, c.at), coalesce(e.recorded_at, c.at),
       coalesce(e.status, ''), coalesce(e.metadata::text, '')
FROM (
    SELECT * FROM changes WHERE position > $1` + where + ` ORDER BY position LIMIT $2
) c
LEFT JOIN events e ON e.id = c.event_id AND e.recorded_at = c.event_recorded_at
ORDER BY c.position`
}

var (
	allChainRecordsSQL  = chainRecordsSQL(``)
	userChainRecordsSQL = chainRecordsSQL(` AND user_id = $3`)
)

// ChainRecords implements ports.Evidence.
func (s *Store) ChainRecords(ctx context.Context, f domain.ChangeFilter) ([]domain.ChainRecord, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	query, args := allChainRecordsSQL, []any{f.After, f.Limit}
	if f.UserID != 0 {
		query, args = userChainRecordsSQL, append(args, f.UserID)
	}
	rows, err := s.queryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: read the chains: %w", wrap(err))
	}
	defer rows.Close()
	out := []domain.ChainRecord{}
	for rows.Next() {
		var (
			r                   domain.ChainRecord
			e                   = &r.Entry
			kind                int
			status, detail, act string
			nowStatus, md       string
			digest, link        []byte
			occurred, recorded  = e.OccurredAt, e.RecordedAt
		)
		if err := rows.Scan(&e.Position, &kind, &e.UserID, idScanner{&e.EventID}, timeScanner{&e.At}, &status, &detail,
			&digest, &link, &r.Gone, &r.Pruned, &act, timeScanner{&occurred}, timeScanner{&recorded}, &nowStatus, &md); err != nil {
			return nil, fmt.Errorf("postgres: read the chains: %w", wrap(err))
		}
		if e.Kind, err = storage.ChangeKind(kind); err != nil {
			return nil, fmt.Errorf("postgres: read the chains: %w", err)
		}
		copy(r.Digest[:], digest)
		copy(r.Link[:], link)
		switch {
		case kind == storage.KindErased:
			if r.Erasure, err = storage.ParseErasure(e.UserID, e.At, []byte(detail)); err != nil {
				return nil, fmt.Errorf("postgres: read the chains: %w", err)
			}
			e.EventID, e.Digest, r.Gone = domain.ID{}, domain.ErasureDigest(*r.Erasure), false
		case !r.Gone:
			e.Action, e.Status, e.OccurredAt, e.RecordedAt = domain.Action(act), domain.Status(status), occurred, recorded
			r.Status, r.Emptied = domain.Status(nowStatus), md == "{}"
			if kind == storage.KindRecorded {
				e.Digest = domain.MetadataDigest([]byte(md))
			}
		default:
			e.Status = domain.Status(status)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read the chains: %w", wrap(err))
	}
	return out, nil
}

// ChainHeads implements ports.Evidence: the heads and the feed's head in
// one snapshot (a writer moves both in one transaction).
func (s *Store) ChainHeads(ctx context.Context) (int64, []domain.ChainHead, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return 0, nil, fmt.Errorf("postgres: read the chains' heads: %w", wrap(err))
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	var pos int64
	if err := tx.QueryRowContext(ctx, `SELECT last FROM feed_head`).Scan(&pos); err != nil {
		return 0, nil, fmt.Errorf("postgres: read the chains' heads: %w", wrap(err))
	}
	rows, err := tx.QueryContext(ctx, `SELECT user_id, position, count, link FROM chain_heads ORDER BY user_id`)
	if err != nil {
		return 0, nil, fmt.Errorf("postgres: read the chains' heads: %w", wrap(err))
	}
	defer rows.Close()
	out := []domain.ChainHead{}
	for rows.Next() {
		var (
			h    domain.ChainHead
			link []byte
		)
		if err := rows.Scan(&h.UserID, &h.Position, &h.Count, &link); err != nil {
			return 0, nil, fmt.Errorf("postgres: read the chains' heads: %w", wrap(err))
		}
		copy(h.Link[:], link)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("postgres: read the chains' heads: %w", wrap(err))
	}
	return pos, out, nil
}

// SaveCheckpoint implements ports.Evidence in one transaction.
func (s *Store) SaveCheckpoint(ctx context.Context, c domain.Checkpoint, leaves []domain.ChainHead) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: save checkpoint: %w", wrap(err))
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	res, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (position, at, users, root, key_id, signature, leaves)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (position) DO NOTHING`,
		c.Position, c.At.UTC(), c.Users, c.Root[:], c.KeyID, c.Signature, storage.EncodeLeaves(leaves))
	if err != nil {
		return fmt.Errorf("postgres: save checkpoint: %w", wrap(err))
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err == nil {
			err = fmt.Errorf("%w: a checkpoint at position %d exists", domain.ErrConflict, c.Position)
		}
		return fmt.Errorf("postgres: save checkpoint: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE checkpoints SET leaves = NULL WHERE leaves IS NOT NULL AND position <
		(SELECT position FROM checkpoints ORDER BY position DESC OFFSET `+strconv.Itoa(ports.KeptLeaves-1)+` LIMIT 1)`); err != nil {
		return fmt.Errorf("postgres: save checkpoint: %w", wrap(err))
	}
	return wrap(tx.Commit())
}

// Checkpoints implements ports.Evidence.
func (s *Store) Checkpoints(ctx context.Context, before int64, limit int) ([]domain.Checkpoint, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.db.QueryContext(ctx, `SELECT position, at, users, root, key_id, signature FROM checkpoints
		WHERE position < $1 ORDER BY position DESC LIMIT $2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: list checkpoints: %w", wrap(err))
	}
	defer rows.Close()
	out := []domain.Checkpoint{}
	for rows.Next() {
		var (
			c    domain.Checkpoint
			root []byte
		)
		if err := rows.Scan(&c.Position, timeScanner{&c.At}, &c.Users, &root, &c.KeyID, &c.Signature); err != nil {
			return nil, fmt.Errorf("postgres: list checkpoints: %w", wrap(err))
		}
		copy(c.Root[:], root)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list checkpoints: %w", wrap(err))
	}
	return out, nil
}

// CheckpointLeaves implements ports.Evidence.
func (s *Store) CheckpointLeaves(ctx context.Context, position int64) ([]domain.ChainHead, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var b []byte
	err := s.db.QueryRowContext(ctx, `SELECT leaves FROM checkpoints WHERE position = $1 AND leaves IS NOT NULL`, position).Scan(&b)
	switch {
	case err == sql.ErrNoRows:
		return nil, fmt.Errorf("%w: no leaves kept for a checkpoint at position %d", domain.ErrNotFound, position)
	case err != nil:
		return nil, fmt.Errorf("postgres: checkpoint leaves: %w", wrap(err))
	}
	leaves, err := storage.DecodeLeaves(b)
	if err != nil {
		return nil, fmt.Errorf("postgres: checkpoint %d: %w", position, err)
	}
	return leaves, nil
}
