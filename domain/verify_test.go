package domain_test

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
)

// feedOf chains a feed of recordings, one per user id in users, at
// positions 1, 2, …, as a store would hold it.
func feedOf(users ...int64) []domain.ChainRecord {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	links := map[int64]domain.Hash{}
	var rs []domain.ChainRecord
	for i, u := range users {
		pos := int64(i + 1)
		at := t0.Add(time.Duration(pos) * time.Millisecond)
		md := fmt.Sprintf(`{"n":%d}`, pos)
		e := domain.ChainEntry{Position: pos, Kind: domain.ChangeRecorded, UserID: u, EventID: domain.NewID(at),
			Action: "login", Status: domain.StatusPending, OccurredAt: at, RecordedAt: at, At: at,
			Digest: domain.MetadataDigest([]byte(md))}
		links[u] = domain.Link(links[u], e.Hash())
		rs = append(rs, domain.ChainRecord{Entry: e, Link: links[u], Digest: e.Digest, Status: e.Status})
	}
	return rs
}

// headsOf signs a checkpoint over every chain of rs.
func headsOf(t *testing.T, rs []domain.ChainRecord) (*domain.Checkpoint, []domain.ChainHead) {
	t.Helper()
	heads := map[int64]domain.ChainHead{}
	for _, r := range rs {
		h := heads[r.Entry.UserID]
		heads[r.Entry.UserID] = domain.ChainHead{UserID: r.Entry.UserID, Position: r.Entry.Position, Count: h.Count + 1, Link: r.Link}
	}
	var leaves []domain.ChainHead
	for _, h := range heads {
		leaves = append(leaves, h)
	}
	slices.SortFunc(leaves, func(a, b domain.ChainHead) int { return int(a.UserID - b.UserID) })
	hs := make([]domain.Hash, len(leaves))
	for i, l := range leaves {
		hs[i] = l.Leaf()
	}
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cp := domain.Checkpoint{Position: rs[len(rs)-1].Entry.Position, At: time.Now(), Users: len(leaves), Root: domain.MerkleRoot(hs)}.Sign(key)
	return &cp, leaves
}

// without drops the records at positions.
func without(rs []domain.ChainRecord, positions ...int64) []domain.ChainRecord {
	return slices.DeleteFunc(slices.Clone(rs), func(r domain.ChainRecord) bool { return slices.Contains(positions, r.Entry.Position) })
}

// The rules verification names a break by that tell a change gone from a
// chain from a change changed in it: where a truncation starts, whose a
// hole in the feed was, a link broken by a deletion inside the chain
// rather than by an edit, and a metadata edit the stored digest shows.
func TestVerifierNames(t *testing.T) {
	//                users at positions 1 … 9
	base := feedOf(1, 2, 1, 3, 2, 1, 3, 1, 2)
	cases := []struct {
		name   string
		tamper func(rs []domain.ChainRecord) []domain.ChainRecord
		user   int64 // 0: every change is fed
		head   int64 // the feed's head (every change fed); 0: its last position
		noCP   bool  // verify against no checkpoint
		reason domain.BreakReason
		pos    int64
		broken int64 // the user the break names
	}{
		{name: "intact", tamper: func(rs []domain.ChainRecord) []domain.ChainRecord { return rs }},
		{name: "intact, one user", user: 2, tamper: func(rs []domain.ChainRecord) []domain.ChainRecord { return rs }},

		// Truncation: the newest changes gone. One of a user gone is the
		// signed head's own position, not the one after the user's last.
		{name: "the newest gone", head: 9, tamper: func(rs []domain.ChainRecord) []domain.ChainRecord { return without(rs, 9) },
			reason: domain.BreakTruncated, pos: 9, broken: 2},
		{name: "the newest gone, its user", user: 2, tamper: func(rs []domain.ChainRecord) []domain.ChainRecord { return without(rs, 9) },
			reason: domain.BreakTruncated, pos: 9, broken: 2},
		{name: "the two newest gone", head: 9, tamper: func(rs []domain.ChainRecord) []domain.ChainRecord { return without(rs, 8, 9) },
			reason: domain.BreakTruncated, pos: 8, broken: 1},
		{name: "the two newest gone, a user's", user: 1, tamper: func(rs []domain.ChainRecord) []domain.ChainRecord { return without(rs, 8, 9) },
			reason: domain.BreakTruncated, pos: 8, broken: 1},
		// Two of user 1 gone (6 and 8): one user's walk cannot place the
		// first, so the earliest position it can be at is named.
		{name: "two of a user gone from the end of its chain", user: 1, tamper: func(rs []domain.ChainRecord) []domain.ChainRecord { return without(rs, 6, 8) },
			reason: domain.BreakTruncated, pos: 4, broken: 1},
		{name: "the feed's end gone, no checkpoint", noCP: true, head: 9, tamper: func(rs []domain.ChainRecord) []domain.ChainRecord { return without(rs, 9) },
			reason: domain.BreakTruncated, pos: 9},

		// A change gone from inside: a hole of one position is the user's
		// whose next link does not follow; a wider one is no one user's.
		{name: "a hole", tamper: func(rs []domain.ChainRecord) []domain.ChainRecord { return without(rs, 5) },
			reason: domain.BreakMissing, pos: 5, broken: 2},
		{name: "a hole, no checkpoint", noCP: true, tamper: func(rs []domain.ChainRecord) []domain.ChainRecord { return without(rs, 5) },
			reason: domain.BreakMissing, pos: 5, broken: 2},
		{name: "a hole of two users' changes", tamper: func(rs []domain.ChainRecord) []domain.ChainRecord { return without(rs, 4, 5) },
			reason: domain.BreakMissing, pos: 4, broken: 0},
		// One user's walk sees no hole: the user's next link breaks, and
		// the checkpoint's count says a change is gone, not changed.
		{name: "a change gone, its user", user: 2, tamper: func(rs []domain.ChainRecord) []domain.ChainRecord { return without(rs, 5) },
			reason: domain.BreakMissing, pos: 9, broken: 2},
		{name: "a change gone, its user, no checkpoint", user: 2, noCP: true, tamper: func(rs []domain.ChainRecord) []domain.ChainRecord { return without(rs, 5) },
			reason: domain.BreakChanged, pos: 9, broken: 2},
		// Gone and the links recomputed over the rest: only the count.
		{name: "a change gone, the chain relinked", user: 2, tamper: func(rs []domain.ChainRecord) []domain.ChainRecord {
			rs = without(rs, 5)
			var link domain.Hash
			for i := range rs {
				if rs[i].Entry.UserID == 2 {
					link = domain.Link(link, rs[i].Entry.Hash())
					rs[i].Link = link
				}
			}
			return rs
		}, reason: domain.BreakMissing, pos: 9, broken: 2},

		// Edits.
		{name: "metadata", tamper: func(rs []domain.ChainRecord) []domain.ChainRecord {
			rs[5].Entry.Digest = domain.MetadataDigest([]byte(`{"n":0}`))
			return rs
		}, reason: domain.BreakChanged, pos: 6, broken: 1},
		{name: "metadata, its user", user: 1, tamper: func(rs []domain.ChainRecord) []domain.ChainRecord {
			rs[5].Entry.Digest = domain.MetadataDigest([]byte(`{"n":0}`))
			return rs
		}, reason: domain.BreakChanged, pos: 6, broken: 1},
		{name: "an action, its user", user: 1, tamper: func(rs []domain.ChainRecord) []domain.ChainRecord {
			rs[5].Entry.Action = "logout"
			return rs
		}, reason: domain.BreakChanged, pos: 6, broken: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var cp *domain.Checkpoint
			var leaves []domain.ChainHead
			if !tc.noCP {
				cp, leaves = headsOf(t, base)
			}
			rs := tc.tamper(slices.Clone(base))
			if tc.user != 0 {
				rs = slices.DeleteFunc(rs, func(r domain.ChainRecord) bool { return r.Entry.UserID != tc.user })
				if cp != nil {
					leaves = slices.DeleteFunc(leaves, func(h domain.ChainHead) bool { return h.UserID != tc.user })
				}
			}
			v := domain.NewVerifier(cp, leaves, tc.user == 0)
			if tc.user == 0 {
				head := tc.head
				if head == 0 {
					head = rs[len(rs)-1].Entry.Position
				}
				v.ExpectHead(head)
			}
			for _, r := range rs {
				v.Add(r)
			}
			res := v.Finish(tc.user)
			if tc.reason == "" {
				if !res.OK {
					t.Fatalf("verification failed: %+v", *res.FirstBroken)
				}
				return
			}
			b := res.FirstBroken
			if res.OK || b == nil {
				t.Fatalf("verification passed: %+v; want %s at %d", res, tc.reason, tc.pos)
			}
			if b.Reason != tc.reason || b.Position != tc.pos || b.UserID != tc.broken {
				t.Fatalf("first broken: %s at %d, user %d (%s); want %s at %d, user %d", b.Reason, b.Position, b.UserID, b.Detail, tc.reason, tc.pos, tc.broken)
			}
		})
	}
}

// Gap names, for a link broken for no reason its record shows, the
// positions between the user's change before it and it: where a caller
// of one user's walk looks for a deleted change. A break its record
// explains has none.
func TestVerifierGap(t *testing.T) {
	base := feedOf(1, 2, 1, 3, 2, 1, 3, 1, 2)
	walk := func(rs []domain.ChainRecord, u int64) *domain.Verifier {
		v := domain.NewVerifier(nil, nil, false)
		for _, r := range rs {
			if r.Entry.UserID == u {
				v.Add(r)
			}
		}
		v.Finish(u)
		return v
	}
	if after, before, ok := walk(without(base, 5), 2).Gap(); !ok || after != 2 || before != 9 {
		t.Errorf("a change of user 2 gone: Gap = %d, %d, %v; want 2, 9, true", after, before, ok)
	}
	if _, _, ok := walk(base, 2).Gap(); ok {
		t.Error("an intact chain has a Gap")
	}
	md := slices.Clone(base)
	md[4].Entry.Digest = domain.MetadataDigest([]byte(`{}`))
	if _, _, ok := walk(md, 2).Gap(); ok {
		t.Error("a metadata edit, which the stored digest shows, has a Gap")
	}
	gone := slices.Clone(base)
	gone[4].Gone = true
	if _, _, ok := walk(gone, 2).Gap(); ok {
		t.Error("a change whose event is gone has a Gap")
	}
}
