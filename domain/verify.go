package domain

import (
	"fmt"
	"sort"
)

// ChainRecord is one change of a user's chain as a store holds it now: the
// entry recomputed from the rows as they are, with the link and digest
// stored when the change was made. Verifying is recomputing the links from
// the entries and comparing.
type ChainRecord struct {
	// Entry as stored now. Its Digest is, for ChangeRecorded, the digest
	// of the event's metadata now; for ChangeErased, of the erasure's
	// record now.
	Entry ChainEntry
	// Link is the link stored with the change; zero for a change made
	// while chaining was off.
	Link Hash
	// Digest is the digest stored with the change: for ChangeRecorded,
	// the metadata's when it was recorded.
	Digest Hash
	// Gone: the change's event is no longer stored.
	Gone bool
	// Pruned: retention (RETENTION) removed the event; the link is taken
	// as stored, since nothing is left to recompute it from.
	Pruned bool
	// Status is the event's status now.
	Status Status
	// Emptied: the event's metadata is now "{}", as an erasure leaves it.
	Emptied bool
	// Erasure is a ChangeErased's record.
	Erasure *Erasure
}

// BreakReason says why a chain does not verify.
type BreakReason string

// The reasons verification names.
const (
	// BreakChanged: what the change covers (its event's action, times,
	// metadata, status, or the erasure's record) is not what was linked.
	BreakChanged BreakReason = "changed"
	// BreakMissing: a change, or the event it recorded, was deleted.
	BreakMissing BreakReason = "missing"
	// BreakReordered: the change was moved to another position.
	BreakReordered BreakReason = "reordered"
	// BreakTruncated: changes the checkpoint covers are gone from the end
	// of the chain.
	BreakTruncated BreakReason = "truncated"
	// BreakRewritten: the chain is consistent in itself but is not the one
	// the checkpoint signed (its links were recomputed).
	BreakRewritten BreakReason = "rewritten"
	// BreakUnchained: the change was stored without a link.
	BreakUnchained BreakReason = "unchained"
)

// Break is the first link of a chain that does not verify.
type Break struct {
	Position int64       `json:"position"`
	UserID   int64       `json:"user_id"`
	EventID  *ID         `json:"event_id,omitempty"`
	Kind     ChangeKind  `json:"kind,omitempty"`
	Reason   BreakReason `json:"reason"`
	Detail   string      `json:"detail"`
}

// Verifier recomputes chains from records fed to it in position order
// (every user's, or one user's), then checks them against a checkpoint.
// It keeps a few dozen bytes per user (plus one entry per event whose
// status or emptied metadata awaits the later change that explains it), so
// a whole store streams through it.
type Verifier struct {
	cp       *Checkpoint
	leaves   map[int64]ChainHead // the checkpoint's, by user
	users    map[int64]*chainState
	contig   bool  // every record of the feed is fed: positions must have no hole
	lastPos  int64 // of the last record fed
	checked  int64
	pruned   int64 // records of events retention removed
	first    *Break
	prev     Hash                       // the link before first's change
	gap      [2]int64                   // see Gap; zero: none
	hole     [2]int64                   // the first run of positions missing from the feed (contig), first to last
	head     int64                      // the feed's head, when known (ExpectHead)
	pending  map[int64][]pendingErasure // records read with "{}" metadata, awaiting the erasure that emptied them
	statuses map[ID]statusWant          // events whose status now differs from their last change's so far
}

type chainState struct {
	link   Hash
	count  int64
	pos    int64
	recent [4]Hash // stored links before link, newest first
	atCP   ChainHead
	broken bool
}

type pendingErasure struct {
	position int64
	event    ID
	recorded int64 // Unix microseconds
}

type statusWant struct {
	position int64
	user     int64
	want     Status
	now      Status
}

// NewVerifier returns a Verifier checking against cp with leaves (both
// nil: against no checkpoint). all: every change of the feed will be fed,
// so a hole in positions is a deleted change.
func NewVerifier(cp *Checkpoint, leaves []ChainHead, all bool) *Verifier {
	v := &Verifier{cp: cp, users: map[int64]*chainState{}, contig: all,
		pending: map[int64][]pendingErasure{}, statuses: map[ID]statusWant{}}
	if cp != nil {
		v.leaves = make(map[int64]ChainHead, len(leaves))
		for _, l := range leaves {
			v.leaves[l.UserID] = l
		}
	}
	return v
}

// brk records b if it comes before the first break so far, and reports
// whether it did.
func (v *Verifier) brk(b Break) bool {
	if v.first == nil || b.Position < v.first.Position {
		v.first = &b
		v.gap, v.prev = [2]int64{}, Hash{}
		if st := v.users[b.UserID]; st != nil {
			v.prev = st.link
		}
		return true
	}
	return false
}

// claimHole gives user a first break that is a single position missing
// from the feed, claimed by no user yet, when it lies strictly between
// the user's positions after and before: the user's chain shows a change
// gone there, so the hole was that change.
func (v *Verifier) claimHole(user, after, before int64) {
	f := v.first
	if f == nil || f.UserID != 0 || f.Reason != BreakMissing || v.hole[0] != v.hole[1] || f.Position != v.hole[0] ||
		f.Position <= after || f.Position >= before {
		return
	}
	f.UserID = user
	f.Detail = fmt.Sprintf("change %d of this user's chain is gone from the feed", f.Position)
}

// Gap is, when the first break is a user's link that follows no link of
// the user for a reason its record does not show, the positions between
// the user's change before it (after; 0 if none) and it (before). A
// change of the user deleted there breaks the link that way: a walk of
// one user does not see the other positions of the feed, so its caller
// may look there for a hole (a walk of every change finds it itself).
func (v *Verifier) Gap() (after, before int64, ok bool) {
	if v.first == nil || v.gap[1] == 0 || v.first.Position != v.gap[1] {
		return 0, 0, false
	}
	return v.gap[0], v.gap[1], true
}

// Prev is the link the first break's change should have followed: what
// Diagnose needs.
func (v *Verifier) Prev() Hash { return v.prev }

// ExpectHead tells a walk of every change where the feed ends: changes
// missing from the end are then a truncation even with no checkpoint.
func (v *Verifier) ExpectHead(head int64) { v.head = head }

func recordBreak(r ChainRecord, reason BreakReason, detail string) Break {
	b := Break{Position: r.Entry.Position, UserID: r.Entry.UserID, Kind: r.Entry.Kind, Reason: reason, Detail: detail}
	if r.Entry.Kind != ChangeErased {
		id := r.Entry.EventID
		b.EventID = &id
	}
	return b
}

// Add feeds the next record, in position order.
func (v *Verifier) Add(r ChainRecord) {
	v.checked++
	e := r.Entry
	if v.contig && v.lastPos != 0 && e.Position != v.lastPos+1 {
		if v.hole == ([2]int64{}) {
			v.hole = [2]int64{v.lastPos + 1, e.Position - 1}
		}
		v.brk(Break{Position: v.lastPos + 1, Reason: BreakMissing,
			Detail: fmt.Sprintf("changes %d to %d are gone from the feed", v.lastPos+1, e.Position-1)})
	}
	v.lastPos = e.Position
	if r.Pruned && r.Link == (Hash{}) {
		// A tombstone never linked (its event was gone before chaining
		// began): no chain went through it.
		v.pruned++
		return
	}
	st := v.users[e.UserID]
	if st == nil {
		st = &chainState{}
		v.users[e.UserID] = st
	}
	if v.cp != nil && e.Position > v.cp.Position && st.atCP.UserID == 0 {
		st.atCP = ChainHead{UserID: e.UserID, Position: st.pos, Count: st.count, Link: st.link}
	}
	switch e.Kind {
	case ChangeRecorded:
		if r.Emptied && e.Digest != r.Digest && r.Digest != (Hash{}) {
			// Erased, if a later erasure of the user covers it; the
			// link covers the digest stored when it was recorded.
			e.Digest = r.Digest
			v.pending[e.UserID] = append(v.pending[e.UserID], pendingErasure{e.Position, e.EventID, e.RecordedAt.UnixMicro()})
		}
	case ChangeErased:
		if r.Erasure != nil {
			v.settle(e.Position, *r.Erasure)
		}
	}
	if r.Pruned {
		// Retention removed the event: nothing is left to recompute the
		// entry from, so the stored link stands (README: retention).
		v.pruned++
		delete(v.statuses, e.EventID)
		copy(st.recent[1:], st.recent[:len(st.recent)-1])
		st.recent[0] = st.link
		st.link, st.count, st.pos = r.Link, st.count+1, e.Position
		return
	}
	if e.Kind != ChangeErased && !r.Gone {
		if r.Status != e.Status {
			v.statuses[e.EventID] = statusWant{e.Position, e.UserID, e.Status, r.Status}
		} else {
			delete(v.statuses, e.EventID)
		}
	}
	h := e.Hash()
	want := Link(st.link, h)
	if !st.broken && want != r.Link {
		st.broken = true
		switch {
		case r.Gone:
			v.brk(recordBreak(r, BreakMissing, "the event this change recorded is gone"))
		case r.Link == (Hash{}):
			v.brk(recordBreak(r, BreakUnchained, "the change was stored without a link (chaining was off)"))
		case st.follows(r.Link, h):
			v.brk(recordBreak(r, BreakChanged, "a change was inserted before this one: its link follows an earlier change of the user"))
		case e.Kind == ChangeRecorded && r.Digest != (Hash{}) && e.Digest != r.Digest:
			v.brk(recordBreak(r, BreakChanged, "the event's metadata is not what was recorded"))
		default:
			// The entry differs from what was linked, or a change of the
			// user before it is gone: the records alone cannot tell.
			v.claimHole(e.UserID, st.pos, e.Position)
			if v.brk(recordBreak(r, BreakChanged, "the change's "+covered(e.Kind)+" is not what its link covers")) {
				v.gap = [2]int64{st.pos, e.Position}
			}
		}
	}
	copy(st.recent[1:], st.recent[:len(st.recent)-1])
	st.recent[0] = st.link
	st.link, st.count, st.pos = r.Link, st.count+1, e.Position
	if !st.broken {
		st.link = want
	}
}

func covered(k ChangeKind) string {
	switch k {
	case ChangeErased:
		return "erasure record"
	case ChangeStatus:
		return "event or status"
	}
	return "event (action, times, status or metadata)"
}

// follows reports whether stored link l follows one of the links before
// the last with entry h: changes between were deleted.
func (st *chainState) follows(l, h Hash) bool {
	for _, p := range st.recent {
		if Link(p, h) == l {
			return true
		}
	}
	return false
}

// settle marks the records an erasure emptied.
func (v *Verifier) settle(pos int64, er Erasure) {
	var from, to int64 = -1 << 63, 1<<63 - 1
	if !er.From.IsZero() {
		from = er.From.UnixMicro()
	}
	if !er.To.IsZero() {
		to = er.To.UnixMicro()
	}
	keep := v.pending[er.UserID][:0]
	for _, p := range v.pending[er.UserID] {
		if p.position < pos && p.recorded >= from && p.recorded < to {
			continue
		}
		keep = append(keep, p)
	}
	v.pending[er.UserID] = keep
}

// Result is what a verification found.
type Result struct {
	OK      bool  `json:"ok"`
	Checked int64 `json:"checked"` // changes
	Users   int   `json:"users"`
	// Position is the last change checked.
	Position int64 `json:"position"`
	// Checkpoint is the position of the checkpoint checked against; 0: none.
	Checkpoint int64 `json:"checkpoint"`
	// Pruned counts the changes whose events retention removed: their
	// links are taken as stored.
	Pruned      int64  `json:"pruned"`
	FirstBroken *Break `json:"first_broken"`
}

// Finish ends the walk: it settles what only the whole walk can tell
// (metadata emptied with no erasure, statuses changed outside the chain)
// and checks every chain against the checkpoint. user, when not 0, is the
// only user fed.
func (v *Verifier) Finish(user int64) Result {
	for u, ps := range v.pending {
		for _, p := range ps {
			id := p.event
			v.brk(Break{Position: p.position, UserID: u, EventID: &id, Kind: ChangeRecorded, Reason: BreakChanged,
				Detail: "the event's metadata was removed, but no erasure of this user covers it"})
		}
	}
	for id, s := range v.statuses {
		id := id
		v.brk(Break{Position: s.position, UserID: s.user, EventID: &id, Kind: ChangeRecorded, Reason: BreakChanged,
			Detail: fmt.Sprintf("the event's status is %s, but its last change left it %s", s.now, s.want)})
	}
	if v.cp != nil {
		v.checkHeads(user)
	}
	if v.contig && v.head > v.lastPos {
		v.brk(Break{Position: v.lastPos + 1, Reason: BreakTruncated,
			Detail: fmt.Sprintf("the feed's head is %d, but its changes end at %d", v.head, v.lastPos)})
	}
	res := Result{OK: v.first == nil, Checked: v.checked, Users: len(v.users), Position: v.lastPos, Pruned: v.pruned, FirstBroken: v.first}
	if v.cp != nil {
		res.Checkpoint = v.cp.Position
	}
	return res
}

func (v *Verifier) checkHeads(user int64) {
	users := make([]int64, 0, len(v.users))
	for u := range v.users {
		users = append(users, u)
	}
	for u := range v.leaves {
		if _, ok := v.users[u]; !ok && (user == 0 || u == user) {
			users = append(users, u)
		}
	}
	sort.Slice(users, func(i, j int) bool { return users[i] < users[j] })
	for _, u := range users {
		st := v.users[u]
		got := ChainHead{UserID: u}
		if st != nil {
			got = st.atCP
			if got.UserID == 0 { // no change after the checkpoint
				got = ChainHead{UserID: u, Position: st.pos, Count: st.count, Link: st.link}
			}
		}
		leaf, signed := v.leaves[u]
		switch {
		case !signed && got.Count == 0:
		case !signed:
			v.brk(Break{Position: got.Position, UserID: u, Reason: BreakChanged,
				Detail: fmt.Sprintf("the checkpoint at %d signed no chain of this user, but it has %d changes up to it", v.cp.Position, got.Count)})
		case got.Count < leaf.Count && got.Position < leaf.Position:
			v.truncated(u, got, leaf)
		case got.Count < leaf.Count:
			// The signed end is there: changes are gone from inside the
			// chain. A link of the user that broke for no reason its
			// record shows is explained.
			gone := fmt.Sprintf("the checkpoint at %d signed %d changes of this user up to position %d; %d remain", v.cp.Position, leaf.Count, leaf.Position, got.Count)
			if after, before, ok := v.Gap(); ok && v.first.UserID == u {
				v.first.Reason = BreakMissing
				v.first.Detail = fmt.Sprintf("a change of this user between positions %d and %d is gone: %s", after, before, gone)
			} else {
				v.brk(Break{Position: leaf.Position, UserID: u, Reason: BreakMissing, Detail: gone + ", and the links were recomputed without them"})
			}
		case got.Count > leaf.Count || got.Position != leaf.Position:
			v.brk(Break{Position: leaf.Position, UserID: u, Reason: BreakChanged,
				Detail: fmt.Sprintf("the checkpoint at %d signed %d changes of this user up to position %d; the chain has %d up to %d", v.cp.Position, leaf.Count, leaf.Position, got.Count, got.Position)})
		case got.Link != leaf.Link:
			v.brk(Break{Position: leaf.Position, UserID: u, Reason: BreakRewritten,
				Detail: fmt.Sprintf("the chain does not reach the head the checkpoint at %d signed: it was recomputed", v.cp.Position)})
		}
	}
}

// truncated records that the end of user u's chain the checkpoint signed
// (leaf) is gone, with got the chain's head up to the checkpoint. The
// first change gone is after got and, in a walk of every change, after
// the feed's last; with n gone, it is at most n-1 before the signed head.
// Where those bounds meet (always when one change is gone: the signed
// head's own) the position is exact; otherwise it is the earliest
// possible one.
func (v *Verifier) truncated(u int64, got, leaf ChainHead) {
	n := leaf.Count - got.Count
	first, last := got.Position+1, leaf.Position-n+1
	if v.contig && v.lastPos < leaf.Position {
		first = max(first, v.lastPos+1)
	}
	detail := fmt.Sprintf("the checkpoint at %d signed %d changes of this user up to position %d; %d remain", v.cp.Position, leaf.Count, leaf.Position, got.Count)
	if n == 1 || first >= last {
		first = last
		v.claimHole(u, first-1, first+1)
	} else {
		detail += fmt.Sprintf("; the first gone is between %d and %d", first, last)
	}
	v.brk(Break{Position: first, UserID: u, Reason: BreakTruncated, Detail: detail})
}

// Diagnose names more precisely why records[0] broke its chain, given the
// link before it and the user's records after it: moved from another
// position (the stored link follows another link of the window with the
// entry at another position of the window) reads as reordered.
func Diagnose(prev Hash, records []ChainRecord) (BreakReason, bool) {
	if len(records) == 0 {
		return "", false
	}
	r := records[0]
	links := []Hash{prev}
	for _, w := range records {
		links = append(links, w.Link)
	}
	for _, w := range records[1:] {
		e := r.Entry
		e.Position = w.Entry.Position
		h := e.Hash()
		for _, p := range links {
			if Link(p, h) == r.Link {
				return BreakReordered, true
			}
		}
	}
	return "", false
}
