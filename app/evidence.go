package app

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// EvidenceStore is what Evidence needs of the store.
type EvidenceStore interface {
	ports.Evidence
	ports.Changes
	Get(ctx context.Context, id domain.ID) (domain.Event, error)
}

// EvidenceConfig configures Evidence.
type EvidenceConfig struct {
	Key    ed25519.PrivateKey     // signs checkpoints; required
	Sinks  []ports.CheckpointSink // where checkpoints are written besides the store
	Clock  ports.Clock
	Logger *slog.Logger
}

// Evidence signs checkpoints over the users' hash chains, verifies the
// chains against them and makes inclusion proofs (issue 18).
type Evidence struct {
	store EvidenceStore
	key   ed25519.PrivateKey
	pub   ed25519.PublicKey
	sinks []ports.CheckpointSink
	clock ports.Clock
	log   *slog.Logger
	mu    sync.Mutex // one checkpoint at a time in this process; guards what follows

	unwritten map[string]bool // sinks that failed to take the newest checkpoint
	newest    int64           // the newest checkpoint this process signed or found outside the database
	primed    bool            // newest has been read from the sinks
}

// NewEvidence returns an Evidence over store.
func NewEvidence(store EvidenceStore, cfg EvidenceConfig) *Evidence {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Evidence{store: store, key: cfg.Key, pub: cfg.Key.Public().(ed25519.PublicKey), sinks: cfg.Sinks, clock: cfg.Clock, log: log,
		unwritten: map[string]bool{}}
}

// PublicKey is the key checkpoints verify with.
func (x *Evidence) PublicKey() ed25519.PublicKey { return x.pub }

// Signed is a checkpoint as made: where it was written, and where not.
type Signed struct {
	Checkpoint domain.Checkpoint `json:"checkpoint"`
	// New: signed now; false when the newest checkpoint already covered
	// the feed's head.
	New     bool              `json:"new"`
	Written []string          `json:"written"`
	Failed  map[string]string `json:"failed,omitempty"`
}

// Checkpoint signs every user's chain head as of the feed's head now,
// stores the checkpoint and writes it to every sink. When the newest
// checkpoint already covers the head, it is returned instead (New false).
// A sink that fails is named in Failed; the checkpoint stands.
func (x *Evidence) Checkpoint(ctx context.Context) (Signed, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	pos, heads, err := x.store.ChainHeads(ctx)
	if err != nil {
		return Signed{}, fmt.Errorf("checkpoint: %w", err)
	}
	latest, err := x.store.Checkpoints(ctx, 0, 1)
	if err != nil {
		return Signed{}, fmt.Errorf("checkpoint: %w", err)
	}
	if len(latest) > 0 && latest[0].Position >= pos {
		if latest[0].KeyID == domain.CheckpointKeyID(x.pub) {
			// Nothing new to sign; sinks that failed the last time get it again.
			return x.rewrite(ctx, latest[0]), nil
		}
		// The key changed and the feed has not moved: a checkpoint is
		// stored once per position, so none is signed under this key
		// until the next change (README).
		x.log.WarnContext(ctx, "the newest checkpoint was signed by another key; the feed has not moved, so none is stored under this one yet",
			"position", pos, "stored_key_id", latest[0].KeyID, "key_id", domain.CheckpointKeyID(x.pub))
		return Signed{Checkpoint: latest[0], Written: []string{}}, nil
	}
	leaves := make([]domain.Hash, len(heads))
	for i, h := range heads {
		leaves[i] = h.Leaf()
	}
	c := domain.Checkpoint{Position: pos, At: domain.Normalize(x.clock.Now()), Users: len(heads), Root: domain.MerkleRoot(leaves)}.Sign(x.key)
	if err := x.store.SaveCheckpoint(ctx, c, heads); err != nil {
		if errors.Is(err, domain.ErrConflict) { // another replica signed this position first
			if cs, err2 := x.store.Checkpoints(ctx, pos+1, 1); err2 == nil && len(cs) == 1 && cs[0].Position == pos {
				return Signed{Checkpoint: cs[0], Written: []string{}}, nil
			}
		}
		return Signed{}, fmt.Errorf("checkpoint: %w", err)
	}
	out := Signed{Checkpoint: c, New: true, Written: []string{"store"}}
	x.unwritten = map[string]bool{}
	x.put(ctx, c, heads, x.sinks, &out)
	x.newest = max(x.newest, c.Position)
	x.log.InfoContext(ctx, "checkpoint signed", "position", c.Position, "users", c.Users, "root", c.Root.String(), "key_id", c.KeyID)
	return out, nil
}

// known is the newest checkpoint position this process signed or found in
// a sink that can be read back (ports.CheckpointSource), read from the
// sinks once.
func (x *Evidence) known(ctx context.Context) int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.primed {
		x.primed = true
		for _, s := range x.sinks {
			if src, ok := s.(ports.CheckpointSource); ok {
				if c, _, err := src.Latest(ctx); err == nil && c.Verify(x.pub) == nil {
					x.newest = max(x.newest, c.Position)
				}
			}
		}
	}
	return x.newest
}

// put writes c to sinks, recording in out and in x.unwritten which failed.
func (x *Evidence) put(ctx context.Context, c domain.Checkpoint, leaves []domain.ChainHead, sinks []ports.CheckpointSink, out *Signed) {
	for _, s := range sinks {
		if err := s.Put(ctx, c, leaves); err != nil {
			if out.Failed == nil {
				out.Failed = map[string]string{}
			}
			out.Failed[s.Name()] = err.Error()
			x.unwritten[s.Name()] = true
			x.log.ErrorContext(ctx, "checkpoint sink failed", "sink", s.Name(), "position", c.Position, "err", err)
			continue
		}
		delete(x.unwritten, s.Name())
		out.Written = append(out.Written, s.Name())
	}
}

// rewrite writes the stored checkpoint c again to the sinks that failed
// to take it (a sink down at the tick gets it at the next one).
func (x *Evidence) rewrite(ctx context.Context, c domain.Checkpoint) Signed {
	out := Signed{Checkpoint: c, Written: []string{}}
	var again []ports.CheckpointSink
	for _, s := range x.sinks {
		if x.unwritten[s.Name()] {
			again = append(again, s)
		}
	}
	if len(again) == 0 {
		return out
	}
	leaves, err := x.store.CheckpointLeaves(ctx, c.Position)
	if err != nil {
		x.log.ErrorContext(ctx, "checkpoint: rewriting to the sinks that failed", "position", c.Position, "err", err)
		return out
	}
	x.put(ctx, c, leaves, again, &out)
	return out
}

// Checkpoints lists the stored checkpoints below before (0: the newest),
// newest first.
func (x *Evidence) Checkpoints(ctx context.Context, before int64, limit int) ([]domain.Checkpoint, error) {
	return x.store.Checkpoints(ctx, before, limit)
}

// VerifyOptions say what to verify against.
type VerifyOptions struct {
	UserID int64 // 0: every user
	// Checkpoint, with its Leaves, is the checkpoint to check against,
	// read from outside the database; nil: the newest stored one (none
	// stored: the chains alone).
	Checkpoint *domain.Checkpoint
	Leaves     []domain.ChainHead
	// Key verifies the checkpoint; nil: this service's own.
	Key ed25519.PublicKey
	// Progress, when set, is called after each page with the changes
	// checked so far and the last position.
	Progress func(checked, position int64)
	// Page is how many records are read at once; 0: 5000.
	Page int
}

// ErrCheckpointLeaves: the leaves of a checkpoint are not what it signed.
var ErrCheckpointLeaves = errors.New("the checkpoint's leaves do not give its signed root")

// Verify recomputes the chains (one user's or all) from the store and
// checks them against a checkpoint, naming the first broken link. A
// checkpoint whose signature does not verify is refused with
// domain.ErrBadSignature.
func (x *Evidence) Verify(ctx context.Context, o VerifyOptions) (domain.Result, error) {
	key := o.Key
	if key == nil {
		key = x.pub
	}
	cp, leaves := o.Checkpoint, o.Leaves
	if cp == nil {
		latest, err := x.store.Checkpoints(ctx, 0, 1)
		if err != nil {
			return domain.Result{}, fmt.Errorf("verify: %w", err)
		}
		// A checkpoint newer than the database's newest was signed (by
		// this process, or found in a sink outside the database): the
		// database lost it, which verifying against an older one would hide.
		if newest := x.known(ctx); newest > 0 && (len(latest) == 0 || latest[0].Position < newest) {
			return domain.Result{FirstBroken: &domain.Break{Position: newest, UserID: o.UserID, Reason: domain.BreakRewritten,
				Detail: fmt.Sprintf("the checkpoint at %d, signed and kept outside the database, is gone from it: checkpoints were deleted", newest)}}, nil
		}
		if len(latest) > 0 {
			cp = &latest[0]
			if leaves, err = x.store.CheckpointLeaves(ctx, cp.Position); err != nil {
				return domain.Result{}, fmt.Errorf("verify: leaves of checkpoint %d: %w", cp.Position, err)
			}
		}
	}
	if cp != nil {
		if err := cp.Verify(key); err != nil {
			return domain.Result{}, fmt.Errorf("verify: checkpoint %d: %w", cp.Position, err)
		}
		hs := make([]domain.Hash, len(leaves))
		for i, l := range leaves {
			hs[i] = l.Leaf()
		}
		if len(leaves) != cp.Users || domain.MerkleRoot(hs) != cp.Root {
			return domain.Result{}, fmt.Errorf("verify: checkpoint %d: %w", cp.Position, ErrCheckpointLeaves)
		}
		if o.UserID != 0 {
			i, ok := slices.BinarySearchFunc(leaves, o.UserID, func(h domain.ChainHead, u int64) int { return cmp.Compare(h.UserID, u) })
			if ok {
				leaves = leaves[i : i+1]
			} else {
				leaves = nil
			}
		}
	}
	head, err := x.store.FeedHead(ctx)
	if err != nil {
		return domain.Result{}, fmt.Errorf("verify: %w", err)
	}
	v := domain.NewVerifier(cp, leaves, o.UserID == 0)
	if o.UserID == 0 {
		v.ExpectHead(head)
	}
	page := o.Page
	if page <= 0 {
		page = 5000
	}
	// The walk goes to the end of the feed as each page finds it, not to
	// the head read first: a record shows its event as it is now, and the
	// change that made it so (a status change, an erasure committed while
	// the walk ran) has a later position, which the walk must reach too.
	// Positions follow commit order, so a short page is the end of
	// everything the pages before it could have seen.
	var checked, after int64
	for {
		rs, err := x.store.ChainRecords(ctx, domain.ChangeFilter{After: after, UserID: o.UserID, Limit: page})
		if err != nil {
			return domain.Result{}, fmt.Errorf("verify: %w", err)
		}
		for _, r := range rs {
			v.Add(r)
			checked++
			after = r.Entry.Position
		}
		if o.Progress != nil {
			o.Progress(checked, after)
		}
		if len(rs) < page {
			break
		}
	}
	res := v.Finish(o.UserID)
	if b := res.FirstBroken; b != nil && b.Reason == domain.BreakChanged && b.UserID != 0 {
		window, err := x.store.ChainRecords(ctx, domain.ChangeFilter{After: b.Position - 1, UserID: b.UserID, Limit: 32})
		if err == nil && len(window) > 0 && window[0].Entry.Position == b.Position {
			if reason, ok := domain.Diagnose(v.Prev(), window); ok {
				b.Reason, b.Detail = reason, "the change was moved from another position of this user's chain"
			}
		}
	}
	if b := res.FirstBroken; b != nil && o.UserID != 0 && b.Reason == domain.BreakMissing {
		// The checkpoint's count says a change of the user is gone from
		// inside its chain, before the broken link; one user's walk
		// cannot see where, the positions of the feed before it can.
		if after, before, ok := v.Gap(); ok {
			if gone, found, err := x.feedHole(ctx, after, before, page); err != nil {
				return domain.Result{}, fmt.Errorf("verify: %w", err)
			} else if found {
				b.Position, b.Reason, b.EventID, b.Kind = gone, domain.BreakMissing, nil, ""
				b.Detail = fmt.Sprintf("change %d, between this user's changes at %d and %d, is gone from the feed", gone, after, before)
			}
		}
	}
	return res, nil
}

// maxHoleScan bounds how many changes feedHole reads: a user's
// verification reads other users' changes only to place a break.
const maxHoleScan = 100_000

// feedHole returns the first position in (after, before) the feed holds
// no change at (found false: none, or none in the first maxHoleScan).
// The feed has no holes but those deletions make.
func (x *Evidence) feedHole(ctx context.Context, after, before int64, page int) (int64, bool, error) {
	next := after + 1
	for next < before && next-after <= maxHoleScan {
		n := int(min(int64(page), before-next))
		rs, err := x.store.ChainRecords(ctx, domain.ChangeFilter{After: next - 1, Limit: n})
		if err != nil {
			return 0, false, err
		}
		for _, r := range rs {
			if r.Entry.Position != next {
				return next, true, nil
			}
			next++
		}
		if len(rs) < n {
			return next, true, nil
		}
	}
	return 0, false, nil
}

// ErrNotCheckpointed: the event is newer than the checkpoint asked for.
var ErrNotCheckpointed = errors.New("no checkpoint covers this event yet")

// ErrPrunedAfter: a proof cannot be made, retention having removed a
// change of the user between the event and the checkpoint's head.
var ErrPrunedAfter = errors.New("retention removed a later change of this user: its entry cannot be given")

// ErrChainBroken: a proof cannot be made, the stored history no longer
// verifying against the checkpoint.
var ErrChainBroken = errors.New("the stored history does not verify against the checkpoint")

// Proof returns an inclusion proof of event id's recording against the
// checkpoint at position at (0: the newest), for p (the event's user, or
// an admin). The proof is checked before it is returned: a chain broken
// since the checkpoint fails here rather than in the client's hands.
func (x *Evidence) Proof(ctx context.Context, p domain.Principal, id domain.ID, at int64) (domain.Proof, error) {
	ev, err := x.store.Get(ctx, id)
	if err != nil {
		return domain.Proof{}, err
	}
	if p.Authorize(domain.ScopeRead, ev.UserID) != nil {
		return domain.Proof{}, fmt.Errorf("%w: event %s", domain.ErrNotFound, id)
	}
	var cp domain.Checkpoint
	before := int64(0)
	if at > 0 {
		before = at + 1
	}
	cs, err := x.store.Checkpoints(ctx, before, 1)
	if err != nil {
		return domain.Proof{}, fmt.Errorf("proof: %w", err)
	}
	if len(cs) == 0 || (at > 0 && cs[0].Position != at) {
		if at > 0 {
			return domain.Proof{}, fmt.Errorf("%w: no checkpoint at position %d", domain.ErrNotFound, at)
		}
		return domain.Proof{}, fmt.Errorf("proof of event %s: %w", id, ErrNotCheckpointed)
	}
	cp = cs[0]
	leaves, err := x.store.CheckpointLeaves(ctx, cp.Position)
	if err != nil {
		return domain.Proof{}, fmt.Errorf("proof: leaves of checkpoint %d: %w", cp.Position, err)
	}
	idx, ok := slices.BinarySearchFunc(leaves, ev.UserID, func(h domain.ChainHead, u int64) int { return cmp.Compare(h.UserID, u) })
	if !ok {
		return domain.Proof{}, fmt.Errorf("proof of event %s: %w", id, ErrNotCheckpointed)
	}
	head := leaves[idx]
	pr := domain.Proof{Head: head, Index: idx, Checkpoint: cp, Following: []domain.Hash{}}
	found := false
	var (
		after int64
		last  domain.Hash
	)
	done := false
	for !done {
		rs, err := x.store.ChainRecords(ctx, domain.ChangeFilter{After: after, UserID: ev.UserID, Limit: 5000})
		if err != nil {
			return domain.Proof{}, fmt.Errorf("proof: %w", err)
		}
		done = len(rs) < 5000
		for _, r := range rs {
			if r.Entry.Position > head.Position {
				done = true
				break
			}
			e := r.Entry
			if e.Kind == domain.ChangeRecorded && r.Digest != (domain.Hash{}) {
				e.Digest = r.Digest // as linked: an erasure keeps it
			}
			switch {
			case found && r.Pruned:
				// Retention removed a later change of the user: its entry
				// cannot be given, only its link.
				return domain.Proof{}, fmt.Errorf("proof of event %s: %w", id, ErrPrunedAfter)
			case found:
				pr.Following = append(pr.Following, e.Hash())
			case e.Kind == domain.ChangeRecorded && e.EventID == id && !r.Gone:
				// (A tombstone of an earlier event with the same id, since
				// removed by retention, is Gone.)
				pr.Entry, pr.Prev, found = e, last, true
			}
			last = r.Link
			after = r.Entry.Position
		}
	}
	if !found {
		return domain.Proof{}, fmt.Errorf("proof of event %s: %w", id, ErrNotCheckpointed)
	}
	hs := make([]domain.Hash, len(leaves))
	for i, l := range leaves {
		hs[i] = l.Leaf()
	}
	pr.Path = domain.MerklePath(hs, idx)
	if pr.Path == nil {
		pr.Path = []domain.Hash{}
	}
	if err := pr.Verify(x.pub); err != nil {
		return domain.Proof{}, fmt.Errorf("proof of event %s: %w (run activityd verify): %w", id, ErrChainBroken, err)
	}
	return pr, nil
}

// SignNow is Checkpoint on demand, for admin p.
func (x *Evidence) SignNow(ctx context.Context, p domain.Principal) (Signed, error) {
	if !p.IsAdmin() {
		return Signed{}, fmt.Errorf("%w: only an admin may sign a checkpoint", domain.ErrForbidden)
	}
	return x.Checkpoint(ctx)
}

// List lists checkpoints for p (any principal: a checkpoint names no
// user): before and limit as a client gives them ("" for none).
func (x *Evidence) List(ctx context.Context, p domain.Principal, before, limit string) ([]domain.Checkpoint, error) {
	if err := need(p, domain.ScopeRead); err != nil {
		return nil, err
	}
	ve := &domain.ValidationError{}
	b, n := int64(0), 20
	if before != "" {
		v, err := strconv.ParseInt(before, 10, 64)
		if err != nil || v < 1 {
			ve.Add("before", domain.CodeMalformed, "must be a positive integer (a checkpoint's position)")
		}
		b = v
	}
	if limit != "" {
		v, err := strconv.Atoi(limit)
		if err != nil || v < 1 || v > 100 {
			ve.Add("limit", domain.CodeOutOfRange, "must be an integer from 1 to 100")
		}
		n = v
	}
	if err := ve.OrNil(); err != nil {
		return nil, err
	}
	return x.store.Checkpoints(ctx, b, n)
}

// Integrity verifies user's chain (as a client names it) for p against
// the newest checkpoint. A checkpoint that no longer verifies (its
// signature or its leaves changed in the database) is reported as a
// break, not an error: the history cannot be vouched for.
func (x *Evidence) Integrity(ctx context.Context, p domain.Principal, user string) (domain.Result, error) {
	u, ok := domain.ParseUserID(user)
	if !ok {
		return domain.Result{}, fmt.Errorf("%w: user %q", domain.ErrNotFound, user)
	}
	if err := p.Authorize(domain.ScopeRead, u); err != nil {
		return domain.Result{}, err
	}
	res, err := x.Verify(ctx, VerifyOptions{UserID: u})
	if errors.Is(err, domain.ErrBadSignature) || errors.Is(err, ErrCheckpointLeaves) {
		cs, _ := x.store.Checkpoints(ctx, 0, 1)
		b := &domain.Break{UserID: u, Reason: domain.BreakRewritten, Detail: "the newest checkpoint stored: " + err.Error()}
		if len(cs) > 0 {
			b.Position = cs[0].Position
		}
		return domain.Result{OK: false, FirstBroken: b}, nil
	}
	return res, err
}

// ProofOf is Proof with the event id and checkpoint position as a client
// gives them ("" checkpoint: the newest).
func (x *Evidence) ProofOf(ctx context.Context, p domain.Principal, id, checkpoint string) (domain.Proof, error) {
	if err := need(p, domain.ScopeRead); err != nil {
		return domain.Proof{}, err
	}
	var at int64
	if checkpoint != "" {
		v, err := strconv.ParseInt(checkpoint, 10, 64)
		if err != nil || v < 0 {
			return domain.Proof{}, domain.Invalid("checkpoint", domain.CodeMalformed, "must be a checkpoint's position")
		}
		at = v
	}
	eid, err := domain.ParseID(id)
	if err != nil {
		return domain.Proof{}, fmt.Errorf("%w: event %q", domain.ErrNotFound, id)
	}
	return x.Proof(ctx, p, eid, at)
}
