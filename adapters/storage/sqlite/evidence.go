package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

var _ ports.Evidence = (*Store)(nil)

// newChange is a change to record (see insertChanges): its row, and what
// its link covers of its event or erasure. Times are Unix microseconds.
type newChange struct {
	kind      int // storage.KindRecorded, KindStatus or KindErased
	eventID   domain.ID
	userID    int64
	at        int64
	status    string // the status the change left; "" for an erasure
	updatedAt int64
	detail    sql.NullString // an erasure's (storage.ErasureDetail)

	action     string
	occurredAt int64 // 0 for an erasure
	recordedAt int64 // 0 for an erasure
	digest     domain.Hash
}

// recordedChange is the change that records e, as insertEvents stored it.
func recordedChange(e domain.Event) newChange {
	return newChange{
		kind: storage.KindRecorded, eventID: e.ID, userID: e.UserID, at: micros(e.RecordedAt),
		status: string(e.Status), updatedAt: micros(e.UpdatedAt),
		action: string(e.Action), occurredAt: micros(e.OccurredAt), recordedAt: micros(e.RecordedAt),
		// The metadata exactly as eventArgs stores it.
		digest: domain.MetadataDigest(e.MetadataOrEmpty()),
	}
}

// entry is what c's link covers at position pos.
func (c *newChange) entry(pos int64) (domain.ChainEntry, error) {
	kind, err := storage.ChangeKind(c.kind)
	if err != nil {
		return domain.ChainEntry{}, err
	}
	e := domain.ChainEntry{Position: pos, Kind: kind, UserID: c.userID, EventID: c.eventID,
		Action: domain.Action(c.action), Status: domain.Status(c.status), At: fromMicros(c.at), Digest: c.digest}
	if c.kind != storage.KindErased {
		e.OccurredAt, e.RecordedAt = fromMicros(c.occurredAt), fromMicros(c.recordedAt)
	}
	return e, nil
}

// changeParams is how many parameters a changes row takes in insertChanges.
const changeParams = 10

// insertChanges records cs, in order, in the write transaction tx: every
// write of the feed goes through it. Unless the store is unchained it
// numbers them itself, after AUTOINCREMENT's counter (which an explicit
// position advances, so positions are still never handed out twice), and
// links each into its user's chain, several of one user one after the
// other; SQLite's single writer makes reading the heads then writing them
// safe. One SELECT reads the heads of the users concerned, one multi-row
// INSERT per batchRows changes stores them, one multi-row upsert per
// batchRows users stores the new heads.
func (s *Store) insertChanges(ctx context.Context, tx *sqlx.Tx, cs []newChange) error {
	if len(cs) == 0 {
		return nil
	}
	var (
		next  int64
		heads map[int64]domain.ChainHead
		users []int64 // whose heads move, in order of first change
	)
	if !s.unchained {
		if err := tx.GetContext(ctx, &next, `SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0) + 1`); err != nil {
			return fmt.Errorf("read the change feed's head: %w", err)
		}
		heads = make(map[int64]domain.ChainHead)
		for i := range cs {
			if _, seen := heads[cs[i].userID]; !seen {
				heads[cs[i].userID] = domain.ChainHead{}
				users = append(users, cs[i].userID)
			}
		}
		if err := readHeads(ctx, tx, users, heads); err != nil {
			return err
		}
	}

	args := make([]any, 0, changeParams*min(len(cs), batchRows))
	links := make([]domain.Hash, min(len(cs), batchRows))
	for start := 0; start < len(cs); start += batchRows {
		chunk := cs[start:min(start+batchRows, len(cs))]
		args = args[:0]
		for i := range chunk {
			c := &chunk[i]
			var pos, digest, link any // NULL: AUTOINCREMENT's position, unchained
			if heads != nil {
				e, err := c.entry(next)
				if err != nil {
					return err
				}
				h := heads[c.userID]
				links[i] = domain.Link(h.Link, e.Hash())
				heads[c.userID] = domain.ChainHead{UserID: c.userID, Position: next, Count: h.Count + 1, Link: links[i]}
				pos, link = next, links[i][:]
				if c.digest != (domain.Hash{}) {
					digest = c.digest[:]
				}
				next++
			}
			args = append(args, pos, c.kind, c.eventID[:], c.userID, c.at, c.status, c.updatedAt, c.detail, digest, link)
		}
		q := multiRow(`INSERT INTO changes (position, kind, event_id, user_id, at, status, updated_at, detail, digest, link) VALUES `,
			"(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", len(chunk))
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("record %d changes: %w", len(chunk), err)
		}
	}

	for start := 0; start < len(users); start += batchRows {
		chunk := users[start:min(start+batchRows, len(users))]
		args = args[:0]
		for _, u := range chunk {
			h := heads[u]
			args = append(args, u, h.Position, h.Count, h.Link[:])
		}
		q := multiRow(`INSERT INTO chain_heads (user_id, position, count, link) VALUES `, "(?, ?, ?, ?)", len(chunk)) +
			` ON CONFLICT (user_id) DO UPDATE SET position = excluded.position, count = excluded.count, link = excluded.link`
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("store %d chain heads: %w", len(chunk), err)
		}
	}
	return nil
}

// readHeads fills heads with the stored heads of users (a user without a
// chain keeps the zero head).
func readHeads(ctx context.Context, tx *sqlx.Tx, users []int64, heads map[int64]domain.ChainHead) error {
	args := make([]any, 0, min(len(users), batchRows))
	for start := 0; start < len(users); start += batchRows {
		chunk := users[start:min(start+batchRows, len(users))]
		args = args[:0]
		for _, u := range chunk {
			args = append(args, u)
		}
		rows, err := tx.QueryContext(ctx, `SELECT user_id, position, count, link FROM chain_heads WHERE user_id IN (`+
			placeholders(len(chunk))+`)`, args...)
		if err != nil {
			return fmt.Errorf("read chain heads: %w", err)
		}
		for rows.Next() {
			var h domain.ChainHead
			var link []byte
			if err := rows.Scan(&h.UserID, &h.Position, &h.Count, &link); err != nil {
				rows.Close()
				return fmt.Errorf("read chain heads: %w", err)
			}
			if h.Link, err = hashOf(link); err != nil {
				rows.Close()
				return fmt.Errorf("chain head of user %d: %w", h.UserID, err)
			}
			heads[h.UserID] = h
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("read chain heads: %w", err)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read chain heads: %w", err)
		}
	}
	return nil
}

// hashOf reads a stored digest: NULL is the zero Hash.
func hashOf(b []byte) (domain.Hash, error) {
	var h domain.Hash
	switch len(b) {
	case 0:
	case len(h):
		copy(h[:], b)
	default:
		return h, fmt.Errorf("a digest of %d bytes", len(b))
	}
	return h, nil
}

// chainSelect reads chain records from "changes c" with index hint (its
// INDEXED BY clause, or nothing) and where; see scanChainRecords. Unlike
// changesSelect it keeps a change whose event is gone.
func chainSelect(hint, where string) string {
	return `SELECT c.position, c.kind, c.event_id, c.user_id, c.at, c.status, c.detail, c.digest, c.link, c.pruned,
	e.id IS NOT NULL, coalesce(e.user_id, 0), coalesce(e.action, ''), coalesce(e.status, ''),
	coalesce(e.occurred_at, 0), coalesce(e.recorded_at, 0), e.metadata
FROM changes c ` + hint + ` LEFT JOIN events e ON e.id = c.event_id AND c.kind <> ` + strconv.Itoa(storage.KindErased) +
		` ` + where + ` ORDER BY c.position LIMIT ?`
}

// scanChainRecords reads the rows of a chainSelect: each change's entry
// as the rows hold it now, with the digest and link stored with it. The
// write path (newChange.entry) and the backfill (chainExisting) must
// cover exactly what this reads.
func scanChainRecords(rows *sql.Rows) ([]domain.ChainRecord, error) {
	defer rows.Close()
	out := []domain.ChainRecord{}
	for rows.Next() {
		var (
			pos, userID, at, eUser, occurred, recorded int64
			code                                       int
			eventID, digest, link, metadata            []byte
			status, action, eStatus                    string
			detail                                     sql.NullString
			present, pruned                            bool
		)
		if err := rows.Scan(&pos, &code, &eventID, &userID, &at, &status, &detail, &digest, &link, &pruned,
			&present, &eUser, &action, &eStatus, &occurred, &recorded, &metadata); err != nil {
			return nil, err
		}
		kind, err := storage.ChangeKind(code)
		if err != nil {
			return nil, err
		}
		r := domain.ChainRecord{Entry: domain.ChainEntry{Position: pos, Kind: kind, UserID: userID,
			Status: domain.Status(status), At: fromMicros(at)}}
		if r.Digest, err = hashOf(digest); err != nil {
			return nil, fmt.Errorf("change %d: %w", pos, err)
		}
		if r.Link, err = hashOf(link); err != nil {
			return nil, fmt.Errorf("change %d: %w", pos, err)
		}
		if code == storage.KindErased {
			if r.Erasure, err = storage.ParseErasure(userID, r.Entry.At, []byte(detail.String)); err != nil {
				return nil, fmt.Errorf("change %d: %w", pos, err)
			}
			r.Entry.Digest = domain.ErasureDigest(*r.Erasure)
			out = append(out, r)
			continue
		}
		if len(eventID) != len(r.Entry.EventID) {
			return nil, fmt.Errorf("change %d: event id of %d bytes", pos, len(eventID))
		}
		copy(r.Entry.EventID[:], eventID)
		if !present || pruned {
			// Only the change's own columns remain: the entry cannot say
			// what the event was. (A pruned change's id may have been
			// given to a new event since: that one is not this one.)
			r.Gone, r.Pruned = true, pruned
			out = append(out, r)
			continue
		}
		// The event's columns now, its user's included: an event moved to
		// another user breaks both chains.
		r.Entry.UserID, r.Entry.Action = eUser, domain.Action(action)
		r.Entry.OccurredAt, r.Entry.RecordedAt = fromMicros(occurred), fromMicros(recorded)
		r.Status, r.Emptied = domain.Status(eStatus), string(metadata) == "{}"
		if code == storage.KindRecorded {
			r.Entry.Digest = domain.MetadataDigest(metadata)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// ChainRecords implements ports.Evidence.
func (s *Store) ChainRecords(ctx context.Context, f domain.ChangeFilter) ([]domain.ChainRecord, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var rows *sql.Rows
	var err error
	if f.UserID != 0 {
		rows, err = s.r.QueryContext(ctx, chainSelect(`INDEXED BY changes_user`, `WHERE c.user_id = ? AND c.position > ?`),
			f.UserID, f.After, f.Limit)
	} else {
		rows, err = s.r.QueryContext(ctx, chainSelect(``, `WHERE c.position > ?`), f.After, f.Limit)
	}
	if err != nil {
		return nil, mapErr("read chain records", err)
	}
	out, err := scanChainRecords(rows)
	if err != nil {
		return nil, mapErr("read chain records", err)
	}
	return out, nil
}

// ChainHeads implements ports.Evidence: the heads and the feed's head
// read in one read transaction, so from one snapshot.
func (s *Store) ChainHeads(ctx context.Context) (int64, []domain.ChainHead, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var pos int64
	heads := []domain.ChainHead{}
	err := func() error {
		tx, err := s.r.BeginTxx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // read only: nothing to keep
		if err := tx.GetContext(ctx, &pos, `SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)`); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT user_id, position, count, link FROM chain_heads ORDER BY user_id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var h domain.ChainHead
			var link []byte
			if err := rows.Scan(&h.UserID, &h.Position, &h.Count, &link); err != nil {
				return err
			}
			if h.Link, err = hashOf(link); err != nil {
				return fmt.Errorf("chain head of user %d: %w", h.UserID, err)
			}
			heads = append(heads, h)
		}
		return rows.Err()
	}()
	if err != nil {
		return 0, nil, mapErr("read chain heads", err)
	}
	return pos, heads, nil
}

// SaveCheckpoint implements ports.Evidence in one write transaction, which
// also drops the leaves of the checkpoints no longer among the newest
// ports.KeptLeaves.
func (s *Store) SaveCheckpoint(ctx context.Context, c domain.Checkpoint, leaves []domain.ChainHead) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.writeTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (position, at, users, root, key_id, signature, leaves)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (position) DO NOTHING`,
			c.Position, micros(c.At), c.Users, c.Root[:], c.KeyID, nonNil(c.Signature), nonNil(storage.EncodeLeaves(leaves)))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("%w: a checkpoint at position %d is stored already", domain.ErrConflict, c.Position)
		}
		_, err = tx.ExecContext(ctx, `UPDATE checkpoints SET leaves = NULL WHERE leaves IS NOT NULL AND position <
			(SELECT position FROM checkpoints ORDER BY position DESC LIMIT 1 OFFSET ?)`, ports.KeptLeaves-1)
		return err
	})
	if err != nil {
		return mapErr(fmt.Sprintf("save the checkpoint at %d", c.Position), err)
	}
	return nil
}

// nonNil keeps an empty value from being stored as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Checkpoints implements ports.Evidence.
func (s *Store) Checkpoints(ctx context.Context, before int64, limit int) ([]domain.Checkpoint, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if before == 0 {
		before = math.MaxInt64
	}
	rows, err := s.r.QueryContext(ctx, `SELECT position, at, users, root, key_id, signature FROM checkpoints
		WHERE position < ? ORDER BY position DESC LIMIT ?`, before, limit)
	if err != nil {
		return nil, mapErr("list checkpoints", err)
	}
	defer rows.Close()
	out := []domain.Checkpoint{}
	for rows.Next() {
		var c domain.Checkpoint
		var at int64
		var root []byte
		if err := rows.Scan(&c.Position, &at, &c.Users, &root, &c.KeyID, &c.Signature); err != nil {
			return nil, mapErr("list checkpoints", err)
		}
		c.At = fromMicros(at)
		if c.Root, err = hashOf(root); err != nil {
			return nil, mapErr("list checkpoints", fmt.Errorf("checkpoint %d: %w", c.Position, err))
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr("list checkpoints", err)
	}
	return out, nil
}

// CheckpointLeaves implements ports.Evidence.
func (s *Store) CheckpointLeaves(ctx context.Context, position int64) ([]domain.ChainHead, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var b []byte
	var kept bool // an empty blob reads as nil: tell it from NULL
	err := s.r.QueryRowContext(ctx, `SELECT leaves IS NOT NULL, leaves FROM checkpoints WHERE position = ?`, position).Scan(&kept, &b)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("%w: no checkpoint at position %d", domain.ErrNotFound, position)
	case err != nil:
		return nil, mapErr(fmt.Sprintf("read the leaves of checkpoint %d", position), err)
	case !kept:
		return nil, fmt.Errorf("%w: checkpoint %d no longer keeps its leaves", domain.ErrNotFound, position)
	}
	out, err := storage.DecodeLeaves(b)
	if err != nil {
		return nil, mapErr(fmt.Sprintf("read the leaves of checkpoint %d", position), err)
	}
	return out, nil
}

// chainExisting is migration 9 (see 00008_chains.sql): it links the
// changes made before chains existed, in position order, from the rows as
// they are when it runs (a change whose event is gone already is linked as
// ChainRecords reads it), and stores the heads, in the migration's
// transaction. An unchained store leaves them unlinked: verification
// reports them as unchained.
func (s *Store) chainExisting(ctx context.Context, tx *sql.Tx) error {
	if s.unchained {
		return nil
	}
	update, err := tx.PrepareContext(ctx, `UPDATE changes SET digest = ?, link = ? WHERE position = ?`)
	if err != nil {
		return fmt.Errorf("chain the existing changes: %w", err)
	}
	defer update.Close()
	heads := map[int64]domain.ChainHead{}
	for after := int64(0); ; {
		rows, err := tx.QueryContext(ctx, chainSelect(``, `WHERE c.position > ?`), after, 5000)
		if err != nil {
			return fmt.Errorf("chain the existing changes: %w", err)
		}
		rs, err := scanChainRecords(rows)
		if err != nil {
			return fmt.Errorf("chain the existing changes after %d: %w", after, err)
		}
		if len(rs) == 0 {
			break
		}
		for _, r := range rs {
			e := r.Entry
			h := heads[e.UserID]
			link := domain.Link(h.Link, e.Hash())
			heads[e.UserID] = domain.ChainHead{UserID: e.UserID, Position: e.Position, Count: h.Count + 1, Link: link}
			var digest any
			if e.Digest != (domain.Hash{}) {
				digest = e.Digest[:]
			}
			if _, err := update.ExecContext(ctx, digest, link[:], e.Position); err != nil {
				return fmt.Errorf("chain change %d: %w", e.Position, err)
			}
		}
		after = rs[len(rs)-1].Entry.Position
	}
	insert, err := tx.PrepareContext(ctx, `INSERT INTO chain_heads (user_id, position, count, link) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("store the chain heads: %w", err)
	}
	defer insert.Close()
	for _, h := range heads {
		if _, err := insert.ExecContext(ctx, h.UserID, h.Position, h.Count, h.Link[:]); err != nil {
			return fmt.Errorf("store the chain head of user %d: %w", h.UserID, err)
		}
	}
	return nil
}

// chainsMigration is chainExisting as goose's version 9.
func (s *Store) chainsMigration() *goose.Migration {
	return goose.NewGoMigration(9, &goose.GoFunc{RunTx: s.chainExisting}, nil)
}
