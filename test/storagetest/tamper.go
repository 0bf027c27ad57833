package storagetest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// Tamperer does to a store's database what someone with write access to
// it, but not to the checkpoint key, could do (issue 18): each method
// changes rows directly with the store's SQL, bypassing the store. A
// method that finds no row to change returns an error, so that a tamper
// which silently did nothing cannot pass for a detected one.
type Tamperer interface {
	// SetMetadata replaces event id's stored metadata with metadata (JSON).
	SetMetadata(ctx context.Context, id domain.ID, metadata string) error
	// SetAction replaces event id's action.
	SetAction(ctx context.Context, id domain.ID, action string) error
	// ShiftTime moves event id's column ("occurred_at" or "recorded_at")
	// by d. recorded_at is moved everywhere the store keeps it for the
	// event (its key, in PostgreSQL), as someone who wants the event still
	// found would.
	ShiftTime(ctx context.Context, id domain.ID, column string, d time.Duration) error
	// SetEventStatus replaces event id's status in its events row only.
	SetEventStatus(ctx context.Context, id domain.ID, status domain.Status) error
	// SetChangeStatus replaces the status a status change (at position)
	// says it left.
	SetChangeStatus(ctx context.Context, position int64, status domain.Status) error
	// DeleteEvent deletes event id's events row only: its changes stay.
	DeleteEvent(ctx context.Context, id domain.ID) error
	// DeleteChange deletes the change at position only.
	DeleteChange(ctx context.Context, position int64) error
	// DeleteNewest deletes the newest n changes and their events.
	DeleteNewest(ctx context.Context, n int) error
	// SwapPositions makes the changes at a and b exchange positions.
	SwapPositions(ctx context.Context, a, b int64) error
	// SetStoredLink replaces the digest (zero: none stored) and the link
	// stored with the change at position.
	SetStoredLink(ctx context.Context, position int64, digest, link domain.Hash) error
	// SetChainHead replaces the stored head of h.UserID's chain.
	SetChainHead(ctx context.Context, h domain.ChainHead) error
	// SetCheckpointLeaves replaces the leaves stored with the checkpoint
	// at position.
	SetCheckpointLeaves(ctx context.Context, position int64, leaves []domain.ChainHead) error
}

// RunTamper runs the tamper suite of issue 18: each case fills a fresh
// store through its own methods, signs a checkpoint, checks that it
// verifies, tampers with the database through the Tamperer, and checks
// that app.Evidence.Verify names the first broken link exactly: its
// reason, position, user and event, for every user and for the tampered
// user alone. open returns a fresh, empty, migrated store and a Tamperer
// on its database, and registers their cleanup with t.Cleanup.
func RunTamper(t *testing.T, open func(t *testing.T) (ports.Store, Tamperer)) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, f *tamperFixture)
	}{
		{"Metadata", tamperMetadata},
		{"MetadataEmptiedWithoutErasure", tamperMetadataEmptied},
		{"Action", tamperAction},
		{"OccurredAt", tamperOccurredAt},
		{"RecordedAt", tamperRecordedAt},
		{"StatusChangeRow", tamperStatusChange},
		{"EventStatus", tamperEventStatus},
		{"MiddleEventRow", tamperMiddleEventRow},
		{"MiddleEventWithItsChange", tamperMiddleEventWithChange},
		{"NewestAfterCheckpoint", tamperTruncated},
		{"Swapped", tamperSwapped},
		{"Rewritten", tamperRewritten},
		{"CheckpointOfAnotherKey", tamperForeignKey},
		{"CheckpointLeaves", tamperLeaves},
		{"Erasure", tamperErasure},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, tm := open(t)
			if s == nil || tm == nil {
				t.Fatal("open returned a nil store or Tamperer")
			}
			tc.fn(t, newTamperFixture(t, s, tm))
		})
	}
}

// tamperFixture is a store filled through its own methods, with a
// checkpoint signed over it that verifies.
type tamperFixture struct {
	s      ports.Store
	tm     Tamperer
	key    ed25519.PrivateKey
	ev     *app.Evidence
	cp     domain.Checkpoint  // signed over every change below
	leaves []domain.ChainHead // cp's, as read when it was signed (kept outside the database)
	base   time.Time
	e      map[string]domain.Event // by name: a1…a5 of user 1, b1, b2 of user 2, c1, c2 of user 3
	md     map[string]string       // their metadata as recorded
	// pos is each change's position: "a1" its recording, "a1>IN_PROGRESS"
	// a status change, "erase" the erasure.
	pos map[string]int64
}

// newTamperFixture records, in this order: a1 (user 1) and b1 (user 2)
// one by one; a batch of a2, a3, b2 and a4 (several of user 1); c1 (user
// 3); a1 PENDING → IN_PROGRESS; a2 PENDING → DONE; an erasure of user 2's
// metadata recorded in [b1, b2) (b1's only); then c2 and a5. It signs a
// checkpoint over them all and checks that every chain verifies against
// it.
func newTamperFixture(t *testing.T, s ports.Store, tm Tamperer) *tamperFixture {
	t.Helper()
	ctx := t.Context()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &tamperFixture{s: s, tm: tm, key: key, ev: app.NewEvidence(s, app.EvidenceConfig{Key: key, Clock: ports.SystemClock}),
		base: time.Now().UTC().Truncate(time.Second), e: map[string]domain.Event{}, md: map[string]string{}, pos: map[string]int64{}}
	ev := func(name string, user int64, action string, ms int, md string) domain.Event {
		at := f.base.Add(time.Duration(ms) * time.Millisecond)
		e := newEvent(t, user, action, at, at.Add(-time.Minute), md)
		f.e[name], f.md[name] = e, string(e.Metadata)
		return e
	}
	mustCreate(t, s, ev("a1", 1, "login", 1, `{"ip":"10.0.0.1"}`), "alice")
	mustCreate(t, s, ev("b1", 2, "login", 2, `{"ip":"10.0.0.2","note":"secret"}`), "bob")
	mustCreateMany(t, s, []domain.Event{
		ev("a2", 1, "upload_file", 3, `{"name":"a.txt"}`),
		ev("a3", 1, "upload_file", 4, `{"name":"b.txt"}`),
		ev("b2", 2, "view_page", 5, `{"page":"/"}`),
		ev("a4", 1, "share", 6, `{"to":"bob"}`),
	})
	mustCreate(t, s, ev("c1", 3, "login", 7, `{"ip":"10.0.0.3"}`), "carol")
	f.setStatus(t, "a1", domain.StatusPending, domain.StatusInProgress, 8)
	f.setStatus(t, "a2", domain.StatusPending, domain.StatusDone, 9)
	er, err := s.Erase(ctx, domain.Erasure{UserID: 2, From: f.e["b1"].RecordedAt, To: f.e["b2"].RecordedAt,
		By: "admin", At: f.base.Add(10 * time.Millisecond)})
	if err != nil || er.Count != 1 {
		t.Fatalf("Erase(b1) = %+v, %v; want 1 event erased", er, err)
	}
	mustCreate(t, s, ev("c2", 3, "logout", 11, `{"n":1}`), "carol")
	mustCreate(t, s, ev("a5", 1, "logout", 12, `{"n":2}`), "alice")

	// Where each change landed, as the store's own feed says.
	names := map[domain.ID]string{}
	for n, e := range f.e {
		names[e.ID] = n
	}
	changes := feed(t, s, 0, 0, 100)
	if len(changes) != 12 {
		t.Fatalf("the fixture made %d changes, want 12", len(changes))
	}
	for i, c := range changes {
		if c.Position != int64(i+1) {
			t.Fatalf("change %d at position %d: the feed has a hole", i, c.Position)
		}
		switch c.Kind {
		case domain.ChangeRecorded:
			f.pos[names[c.Event.ID]] = c.Position
		case domain.ChangeStatus:
			f.pos[names[c.Event.ID]+">"+string(c.Event.Status)] = c.Position
		case domain.ChangeErased:
			f.pos["erase"] = c.Position
		}
	}
	if len(f.pos) != 12 {
		t.Fatalf("the fixture's changes: %v", f.pos)
	}

	signed, err := f.ev.Checkpoint(ctx)
	if err != nil || !signed.New || signed.Checkpoint.Position != 12 || signed.Checkpoint.Users != 3 {
		t.Fatalf("Checkpoint = %+v, %v; want a new one at 12 over 3 users", signed, err)
	}
	f.cp = signed.Checkpoint
	if f.leaves, err = s.CheckpointLeaves(ctx, f.cp.Position); err != nil {
		t.Fatal(err)
	}
	for _, o := range []app.VerifyOptions{{}, {UserID: 1}, {UserID: 2}, {UserID: 3}, {Checkpoint: &f.cp, Leaves: f.leaves}} {
		res := f.verify(t, o)
		if !res.OK || res.Checkpoint != f.cp.Position {
			t.Fatalf("before tampering, Verify(%+v) = %+v (first broken %+v); want ok against checkpoint %d", o, res, res.FirstBroken, f.cp.Position)
		}
	}
	return f
}

func (f *tamperFixture) setStatus(t *testing.T, name string, from, to domain.Status, ms int) {
	t.Helper()
	at := f.base.Add(time.Duration(ms) * time.Millisecond)
	if _, err := f.s.SetStatus(t.Context(), f.e[name].ID, from, to, at, "alice"); err != nil {
		t.Fatalf("SetStatus(%s, %s → %s): %v", name, from, to, err)
	}
}

func (f *tamperFixture) id(name string) domain.ID { return f.e[name].ID }

func (f *tamperFixture) verify(t *testing.T, o app.VerifyOptions) domain.Result {
	t.Helper()
	o.Page = 5 // several pages
	res, err := f.ev.Verify(t.Context(), o)
	if err != nil {
		t.Fatalf("Verify(user %d): %v", o.UserID, err)
	}
	return res
}

// tamper runs a Tamperer method, failing the test on its error.
func tamper(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("tamper (%s): %v", what, err)
	}
}

// broken is the first broken link a case expects.
type broken struct {
	reason   domain.BreakReason
	position int64
	user     int64
	event    *domain.ID // nil: the break names no event
}

func (b broken) String() string {
	ev := "no event"
	if b.event != nil {
		ev = "event " + b.event.String()
	}
	return fmt.Sprintf("%s at %d, user %d, %s", b.reason, b.position, b.user, ev)
}

func eventOf(id domain.ID) *domain.ID { return &id }

// expect checks that Verify with o fails at want exactly.
func (f *tamperFixture) expect(t *testing.T, o app.VerifyOptions, want broken) {
	t.Helper()
	res := f.verify(t, o)
	b := res.FirstBroken
	if res.OK || b == nil {
		t.Fatalf("Verify(user %d) = %+v: the tampering went unnoticed; want %v", o.UserID, res, want)
	}
	got := broken{reason: b.Reason, position: b.Position, user: b.UserID, event: b.EventID}
	if got.reason != want.reason || got.position != want.position || got.user != want.user ||
		(got.event == nil) != (want.event == nil) || (got.event != nil && *got.event != *want.event) {
		t.Fatalf("Verify(user %d): first broken %v (%s: %s); want %v", o.UserID, got, b.Kind, b.Detail, want)
	}
}

// expectAll checks that verifying every user, and user want.user alone,
// both fail at want.
func (f *tamperFixture) expectAll(t *testing.T, want broken) {
	t.Helper()
	f.expect(t, app.VerifyOptions{}, want)
	f.expect(t, app.VerifyOptions{UserID: want.user}, want)
}

// A metadata value changed: the event's change no longer matches its link.
func tamperMetadata(t *testing.T, f *tamperFixture) {
	tamper(t, "metadata", f.tm.SetMetadata(t.Context(), f.id("a3"), `{"name":"evil.txt"}`))
	f.expectAll(t, broken{domain.BreakChanged, f.pos["a3"], 1, eventOf(f.id("a3"))})
}

// Metadata emptied as an erasure would, with no erasure covering it.
func tamperMetadataEmptied(t *testing.T, f *tamperFixture) {
	tamper(t, "metadata", f.tm.SetMetadata(t.Context(), f.id("b2"), `{}`))
	f.expectAll(t, broken{domain.BreakChanged, f.pos["b2"], 2, eventOf(f.id("b2"))})
}

func tamperAction(t *testing.T, f *tamperFixture) {
	tamper(t, "action", f.tm.SetAction(t.Context(), f.id("b2"), "delete_account"))
	f.expectAll(t, broken{domain.BreakChanged, f.pos["b2"], 2, eventOf(f.id("b2"))})
}

func tamperOccurredAt(t *testing.T, f *tamperFixture) {
	tamper(t, "occurred_at", f.tm.ShiftTime(t.Context(), f.id("c1"), "occurred_at", -time.Hour))
	f.expectAll(t, broken{domain.BreakChanged, f.pos["c1"], 3, eventOf(f.id("c1"))})
}

func tamperRecordedAt(t *testing.T, f *tamperFixture) {
	tamper(t, "recorded_at", f.tm.ShiftTime(t.Context(), f.id("a4"), "recorded_at", time.Hour))
	f.expectAll(t, broken{domain.BreakChanged, f.pos["a4"], 1, eventOf(f.id("a4"))})
}

// A status change's row says it left another status.
func tamperStatusChange(t *testing.T, f *tamperFixture) {
	p := f.pos["a1>"+string(domain.StatusInProgress)]
	tamper(t, "status change", f.tm.SetChangeStatus(t.Context(), p, domain.StatusDone))
	f.expectAll(t, broken{domain.BreakChanged, p, 1, eventOf(f.id("a1"))})
}

// An event's status changed without a change: the break is at the event's
// last change, whose status it no longer is.
func tamperEventStatus(t *testing.T, f *tamperFixture) {
	tamper(t, "event status", f.tm.SetEventStatus(t.Context(), f.id("a2"), domain.StatusPending))
	f.expectAll(t, broken{domain.BreakChanged, f.pos["a2>"+string(domain.StatusDone)], 1, eventOf(f.id("a2"))})
}

// An event deleted from the middle of its user's chain, its changes left.
func tamperMiddleEventRow(t *testing.T, f *tamperFixture) {
	tamper(t, "delete event", f.tm.DeleteEvent(t.Context(), f.id("a2")))
	f.expectAll(t, broken{domain.BreakMissing, f.pos["a2"], 1, eventOf(f.id("a2"))})
}

// An event deleted with its change: the feed has a hole where the change
// was, and the user's next change (the erasure) no longer follows.
func tamperMiddleEventWithChange(t *testing.T, f *tamperFixture) {
	tamper(t, "delete event", f.tm.DeleteEvent(t.Context(), f.id("b2")))
	tamper(t, "delete change", f.tm.DeleteChange(t.Context(), f.pos["b2"]))
	f.expectAll(t, broken{domain.BreakMissing, f.pos["b2"], 2, nil})
}

// The newest changes and their events deleted after the checkpoint: c2
// (user 3) and a5 (user 1), each its user's last.
func tamperTruncated(t *testing.T, f *tamperFixture) {
	tamper(t, "delete newest", f.tm.DeleteNewest(t.Context(), 2))
	f.expectAll(t, broken{domain.BreakTruncated, f.pos["c2"], 3, nil})
	f.expect(t, app.VerifyOptions{UserID: 1}, broken{domain.BreakTruncated, f.pos["a5"], 1, nil})
	// Against the checkpoint as kept outside the database too.
	f.expect(t, app.VerifyOptions{Checkpoint: &f.cp, Leaves: f.leaves, UserID: 1}, broken{domain.BreakTruncated, f.pos["a5"], 1, nil})
}

// Two events of one user exchanged positions: the first of them is named,
// holding the other one's change.
func tamperSwapped(t *testing.T, f *tamperFixture) {
	tamper(t, "swap", f.tm.SwapPositions(t.Context(), f.pos["a1"], f.pos["a3"]))
	f.expectAll(t, broken{domain.BreakReordered, f.pos["a1"], 1, eventOf(f.id("a3"))})
}

// rewrite changes a4's metadata and recomputes user 1's chain from it as
// someone with the scheme (docs/evidence.md) would: its digest, every
// later link of the user and the stored head. It returns the new head.
func (f *tamperFixture) rewrite(t *testing.T) domain.ChainHead {
	t.Helper()
	ctx := t.Context()
	tamper(t, "metadata", f.tm.SetMetadata(ctx, f.id("a4"), `{"to":"mallory"}`))
	var h domain.ChainHead
	for _, r := range records(t, f.s, 1, 100) {
		e := r.Entry
		digest := domain.Hash{}
		if e.Kind == domain.ChangeRecorded {
			if r.Emptied && r.Digest != (domain.Hash{}) {
				e.Digest = r.Digest // as linked: an erasure keeps it
			}
			digest = e.Digest
		}
		link := domain.Link(h.Link, e.Hash())
		if link != r.Link || digest != r.Digest {
			tamper(t, "relink", f.tm.SetStoredLink(ctx, e.Position, digest, link))
		}
		h = domain.ChainHead{UserID: 1, Position: e.Position, Count: h.Count + 1, Link: link}
	}
	tamper(t, "chain head", f.tm.SetChainHead(ctx, h))
	// The chains are consistent in themselves: only the checkpoint tells.
	v := domain.NewVerifier(nil, nil, true)
	for _, r := range records(t, f.s, 0, 100) {
		v.Add(r)
	}
	if res := v.Finish(0); !res.OK {
		t.Fatalf("the rewritten chains do not verify by themselves: %+v", *res.FirstBroken)
	}
	return h
}

// A chain recomputed after a change verifies by itself; only the
// checkpoint, stored or kept outside, shows it was rewritten.
func tamperRewritten(t *testing.T, f *tamperFixture) {
	f.rewrite(t)
	want := broken{domain.BreakRewritten, f.pos["a5"], 1, nil}
	f.expectAll(t, want)
	f.expect(t, app.VerifyOptions{Checkpoint: &f.cp, Leaves: f.leaves}, want)
	f.expect(t, app.VerifyOptions{Checkpoint: &f.cp, Leaves: f.leaves, UserID: 1}, want)
}

// A checkpoint signed with another key (say, over a rewritten chain) is
// refused, whether stored or given; the genuine one still shows the
// rewrite.
func tamperForeignKey(t *testing.T, f *tamperFixture) {
	ctx := t.Context()
	f.rewrite(t)
	mustCreate(t, f.s, newEvent(t, 1, "login", f.base.Add(20*time.Millisecond), f.base, `{}`), "alice")
	_, other, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := app.NewEvidence(f.s, app.EvidenceConfig{Key: other, Clock: ports.SystemClock}).Checkpoint(ctx)
	if err != nil || !forged.New {
		t.Fatalf("Checkpoint with another key = %+v, %v", forged, err)
	}
	leaves, err := f.s.CheckpointLeaves(ctx, forged.Checkpoint.Position)
	if err != nil {
		t.Fatal(err)
	}
	pub := f.key.Public().(ed25519.PublicKey)
	for _, o := range []app.VerifyOptions{
		{},          // the newest stored, with this service's key
		{UserID: 1}, // the same, for one user
		{Key: pub},  // the key named
		{UserID: 2}, // a user the rewrite did not touch
		{Checkpoint: &forged.Checkpoint, Leaves: leaves, Key: pub},
	} {
		if res, err := f.ev.Verify(ctx, o); !errors.Is(err, domain.ErrBadSignature) {
			t.Fatalf("Verify(%+v) against a checkpoint of another key = %+v, %v; want ErrBadSignature", o, res, err)
		}
	}
	f.expect(t, app.VerifyOptions{Checkpoint: &f.cp, Leaves: f.leaves, Key: pub}, broken{domain.BreakRewritten, f.pos["a5"], 1, nil})
}

// A stored checkpoint's leaves changed to match a rewritten chain are
// refused; the checkpoint kept outside still shows the rewrite.
func tamperLeaves(t *testing.T, f *tamperFixture) {
	ctx := t.Context()
	h := f.rewrite(t)
	leaves := append([]domain.ChainHead(nil), f.leaves...)
	for i := range leaves {
		if leaves[i].UserID == h.UserID {
			leaves[i] = h
		}
	}
	tamper(t, "leaves", f.tm.SetCheckpointLeaves(ctx, f.cp.Position, leaves))
	for _, o := range []app.VerifyOptions{{}, {UserID: 1}, {UserID: 3}} {
		if res, err := f.ev.Verify(ctx, o); !errors.Is(err, app.ErrCheckpointLeaves) {
			t.Fatalf("Verify(%+v) with the stored leaves changed = %+v, %v; want ErrCheckpointLeaves", o, res, err)
		}
	}
	f.expect(t, app.VerifyOptions{Checkpoint: &f.cp, Leaves: f.leaves, UserID: 1}, broken{domain.BreakRewritten, f.pos["a5"], 1, nil})
}

// An erasure is no tampering: the chains verify against checkpoints
// before and after it, and the erased metadata is gone from the events
// and from their chain records, which keep the digest they were linked
// with.
func tamperErasure(t *testing.T, f *tamperFixture) {
	ctx := t.Context()
	// The fixture's erasure (b1), before the checkpoint; then one after
	// it, of a2 and a3.
	er, err := f.s.Erase(ctx, domain.Erasure{UserID: 1, From: f.e["a2"].RecordedAt, To: f.e["a4"].RecordedAt,
		By: "admin", At: f.base.Add(time.Second)})
	if err != nil || er.Count != 2 {
		t.Fatalf("Erase(a2, a3) = %+v, %v; want 2 events erased", er, err)
	}
	for _, o := range []app.VerifyOptions{{}, {UserID: 1}, {UserID: 2}, {Checkpoint: &f.cp, Leaves: f.leaves}} {
		if res := f.verify(t, o); !res.OK || res.Checkpoint != f.cp.Position {
			t.Fatalf("after erasures, Verify(%+v) = %+v (first broken %+v)", o, res, res.FirstBroken)
		}
	}
	signed, err := f.ev.Checkpoint(ctx)
	if err != nil || !signed.New || signed.Checkpoint.Position != 13 {
		t.Fatalf("Checkpoint after the erasure = %+v, %v", signed, err)
	}
	if res := f.verify(t, app.VerifyOptions{}); !res.OK || res.Checkpoint != 13 {
		t.Fatalf("Verify against the checkpoint after the erasure = %+v (first broken %+v)", res, res.FirstBroken)
	}

	erased := map[string]bool{"b1": true, "a2": true, "a3": true}
	byID := map[domain.ID]domain.ChainRecord{}
	for _, r := range records(t, f.s, 0, 100) {
		if r.Entry.Kind == domain.ChangeRecorded {
			byID[r.Entry.EventID] = r
		}
	}
	for name, e := range f.e {
		got, err := f.s.Get(ctx, e.ID)
		if err != nil {
			t.Fatalf("Get(%s): %v", name, err)
		}
		r := byID[e.ID]
		linked := domain.MetadataDigest([]byte(f.md[name]))
		if r.Digest != linked {
			t.Errorf("%s's chain record keeps digest %s, want %s (as linked)", name, r.Digest, linked)
		}
		if !erased[name] {
			if string(got.Metadata) != f.md[name] || r.Emptied || r.Entry.Digest != linked {
				t.Errorf("%s, not erased: metadata %s, emptied %v; want %s", name, got.Metadata, r.Emptied, f.md[name])
			}
			continue
		}
		if string(got.Metadata) != "{}" {
			t.Errorf("%s, erased: Get returns metadata %s", name, got.Metadata)
		}
		if !r.Emptied || r.Entry.Digest != domain.MetadataDigest([]byte("{}")) {
			t.Errorf("%s, erased: its chain record has emptied %v, digest %s; want the digest of {}", name, r.Emptied, r.Entry.Digest)
		}
	}
}
