package memory

import (
	"cmp"
	"context"
	"slices"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// evidence is the chains' state: each user's head, and the checkpoints
// (newest last), under the store's lock.
type evidence struct {
	heads       map[int64]domain.ChainHead
	checkpoints []checkpoint
}

type checkpoint struct {
	c      domain.Checkpoint
	leaves []domain.ChainHead // nil once no longer kept
}

// entry is what c's link covers, as the store holds it now (metadata: md).
func (c change) entry(pos int64, md []byte) domain.ChainEntry {
	e := domain.ChainEntry{Position: pos, Kind: c.kind, At: c.at}
	if c.erasure != nil {
		e.UserID, e.Digest = c.erasure.UserID, domain.ErasureDigest(*c.erasure)
		return e
	}
	ev := c.r.e
	e.UserID, e.EventID, e.Action, e.Status = ev.UserID, ev.ID, ev.Action, c.status
	e.OccurredAt, e.RecordedAt = ev.OccurredAt, ev.RecordedAt
	if c.kind == domain.ChangeRecorded {
		e.Digest = domain.MetadataDigest(md)
	}
	return e
}

// appendChange appends c to the feed, linked into its user's chain. The
// caller holds the write lock.
func (s *Store) appendChange(c change) {
	pos := int64(len(s.changes)) + 1
	var md []byte
	if c.r != nil {
		md = c.r.e.Metadata
	}
	e := c.entry(pos, md)
	c.digest = e.Digest
	if s.ev.heads == nil {
		s.ev.heads = map[int64]domain.ChainHead{}
	}
	h := s.ev.heads[e.UserID]
	c.link = domain.Link(h.Link, e.Hash())
	s.ev.heads[e.UserID] = domain.ChainHead{UserID: e.UserID, Position: pos, Count: h.Count + 1, Link: c.link}
	s.changes = append(s.changes, c)
}

// ChainRecords implements ports.Evidence.
func (s *Store) ChainRecords(ctx context.Context, f domain.ChangeFilter) ([]domain.ChainRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, domain.ErrUnavailable
	}
	out := []domain.ChainRecord{}
	for i := max(f.After, 0); i < int64(len(s.changes)) && len(out) < f.Limit; i++ {
		c := s.changes[i]
		var md []byte
		r := domain.ChainRecord{Link: c.link, Digest: c.digest}
		if c.r != nil {
			md = c.r.e.Metadata
			r.Status, r.Emptied = c.r.e.Status, string(md) == "{}"
		} else if c.erasure != nil {
			er := *c.erasure
			r.Erasure = &er
		}
		r.Entry = c.entry(i+1, md)
		if f.UserID != 0 && r.Entry.UserID != f.UserID {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// ChainHeads implements ports.Evidence.
func (s *Store) ChainHeads(ctx context.Context) (int64, []domain.ChainHead, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, nil, domain.ErrUnavailable
	}
	out := make([]domain.ChainHead, 0, len(s.ev.heads))
	for _, h := range s.ev.heads {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b domain.ChainHead) int { return cmp.Compare(a.UserID, b.UserID) })
	return int64(len(s.changes)), out, nil
}

// SaveCheckpoint implements ports.Evidence.
func (s *Store) SaveCheckpoint(ctx context.Context, c domain.Checkpoint, leaves []domain.ChainHead) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return domain.ErrUnavailable
	}
	for _, k := range s.ev.checkpoints {
		if k.c.Position == c.Position {
			return domain.ErrConflict
		}
	}
	c.Signature = slices.Clone(c.Signature)
	s.ev.checkpoints = append(s.ev.checkpoints, checkpoint{c: c, leaves: slices.Clone(leaves)})
	slices.SortFunc(s.ev.checkpoints, func(a, b checkpoint) int { return cmp.Compare(a.c.Position, b.c.Position) })
	for i := range len(s.ev.checkpoints) - ports.KeptLeaves {
		s.ev.checkpoints[i].leaves = nil
	}
	return nil
}

// Checkpoints implements ports.Evidence.
func (s *Store) Checkpoints(ctx context.Context, before int64, limit int) ([]domain.Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, domain.ErrUnavailable
	}
	out := []domain.Checkpoint{}
	for i := len(s.ev.checkpoints) - 1; i >= 0 && len(out) < limit; i-- {
		if c := s.ev.checkpoints[i].c; before == 0 || c.Position < before {
			c.Signature = slices.Clone(c.Signature)
			out = append(out, c)
		}
	}
	return out, nil
}

// CheckpointLeaves implements ports.Evidence.
func (s *Store) CheckpointLeaves(ctx context.Context, position int64) ([]domain.ChainHead, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, domain.ErrUnavailable
	}
	for _, k := range s.ev.checkpoints {
		if k.c.Position == position && k.leaves != nil {
			return slices.Clone(k.leaves), nil
		}
	}
	return nil, domain.ErrNotFound
}
