package storagetest

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// records reads every chain record of user (0: every user's) in pages.
func records(t *testing.T, s ports.Store, user int64, limit int) []domain.ChainRecord {
	t.Helper()
	var out []domain.ChainRecord
	after := int64(0)
	for {
		page, err := s.ChainRecords(t.Context(), domain.ChangeFilter{After: after, UserID: user, Limit: limit})
		if err != nil {
			t.Fatalf("ChainRecords(after %d, user %d): %v", after, user, err)
		}
		if len(page) > limit {
			t.Fatalf("ChainRecords(limit %d) returned %d", limit, len(page))
		}
		out = append(out, page...)
		if len(page) < limit {
			return out
		}
		after = page[len(page)-1].Entry.Position
	}
}

// relink recomputes every user's chain from the records' entries, the way
// docs/evidence.md specifies it, and reports the first record whose stored
// link differs. It returns the heads it computed.
func relink(t *testing.T, rs []domain.ChainRecord) map[int64]domain.ChainHead {
	t.Helper()
	heads := map[int64]domain.ChainHead{}
	for i, r := range rs {
		if i > 0 && r.Entry.Position != rs[i-1].Entry.Position+1 {
			t.Fatalf("positions %d then %d: a hole", rs[i-1].Entry.Position, r.Entry.Position)
		}
		h := heads[r.Entry.UserID]
		want := domain.Link(h.Link, r.Entry.Hash())
		if r.Link != want {
			t.Fatalf("change %d (%s of user %d): stored link %s, recomputed %s", r.Entry.Position, r.Entry.Kind, r.Entry.UserID, r.Link, want)
		}
		heads[r.Entry.UserID] = domain.ChainHead{UserID: r.Entry.UserID, Position: r.Entry.Position, Count: h.Count + 1, Link: want}
	}
	return heads
}

// checkHeads compares ChainHeads with the heads recomputed from records.
func checkHeads(t *testing.T, s ports.Store, want map[int64]domain.ChainHead) {
	t.Helper()
	pos, heads, err := s.ChainHeads(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	head, err := s.FeedHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if pos != head {
		t.Errorf("ChainHeads at position %d, the feed's head is %d", pos, head)
	}
	if len(heads) != len(want) {
		t.Fatalf("ChainHeads: %d users, recomputed %d", len(heads), len(want))
	}
	for i, h := range heads {
		if i > 0 && heads[i-1].UserID >= h.UserID {
			t.Fatalf("ChainHeads not in user id order: %d then %d", heads[i-1].UserID, h.UserID)
		}
		if w := want[h.UserID]; h != w {
			t.Errorf("head of user %d = %+v, recomputed %+v", h.UserID, h, w)
		}
	}
}

// verifyAll runs domain.Verifier over every record and fails on a break.
func verifyAll(t *testing.T, s ports.Store) domain.Result {
	t.Helper()
	v := domain.NewVerifier(nil, nil, true)
	for _, r := range records(t, s, 0, 7) {
		v.Add(r)
	}
	res := v.Finish(0)
	if !res.OK {
		t.Fatalf("verification failed: %+v", *res.FirstBroken)
	}
	return res
}

// testChains: every kind of write links its changes into their users'
// chains, in position order, with entries that say what was stored: a
// single create, a batch (with a user's several events, and one big
// enough for a store's bulk path), an import, a status change, an erasure.
func testChains(t *testing.T, s ports.Store) {
	ctx := t.Context()
	base := time.Now().UTC().Truncate(time.Second)
	a := mustCreate(t, s, newEvent(t, 1, "login", base, base.Add(-time.Minute), `{"ip":"10.0.0.1","b":[1,2.50,"é"]}`), "alice")
	// Go's zero time (0001-01-01 UTC) as an occurred_at: entries encode
	// it as 0, as they do no time, in SQL as in Go.
	y1 := newEvent(t, 4, "login", base.Add(-time.Millisecond), base, `{"k":"ünï"}`)
	y1.OccurredAt = time.Time{}
	mustCreate(t, s, y1, "alice")
	var batch []domain.Event
	for i := range 150 { // past any bulk-path threshold
		batch = append(batch, newEvent(t, int64(1+i%3), fmt.Sprintf("act_%d", i%5), base.Add(time.Duration(i+1)*time.Microsecond), base, fmt.Sprintf(`{"i":%d}`, i)))
	}
	claimed := newEvent(t, 2, "deleted", base.Add(time.Second), base, `{"k":"v"}`)
	claimed.ID = domain.KeyID(2, "chains-claimed")
	batch = append(batch, claimed, batch[0]) // a repeated id records nothing
	mustCreateMany(t, s, batch[:3])
	if _, err := s.CreateMany(ctx, batch[3:], "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(ctx, []domain.Event{imported(t, 41, 4, domain.StatusDone, base.Add(-time.Hour)), imported(t, 42, 1, domain.StatusPending, base.Add(-time.Hour))}, "import"); err != nil {
		t.Fatal(err)
	}
	now := base.Add(time.Minute)
	if _, err := s.SetStatus(ctx, a.ID, domain.StatusPending, domain.StatusInProgress, now, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, a.ID, domain.StatusInProgress, domain.StatusDone, now.Add(time.Second), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, a.ID, domain.StatusInProgress, domain.StatusDone, now.Add(2*time.Second), "alice"); !errors.Is(err, domain.ErrStatusConflict) {
		t.Fatalf("stale compare-and-set: %v", err)
	}

	rs := records(t, s, 0, 13)
	changes := feed(t, s, 0, 0, 1000)
	if len(rs) != len(changes) {
		t.Fatalf("%d chain records, %d changes", len(rs), len(changes))
	}
	for i, c := range changes {
		e := rs[i].Entry
		if e.Position != c.Position || e.Kind != c.Kind || e.UserID != c.UserID() || e.EventID != c.Event.ID ||
			e.Action != c.Event.Action || e.Status != c.Event.Status || diffTime(e.At, c.At) != "" ||
			diffTime(e.OccurredAt, c.Event.OccurredAt) != "" || diffTime(e.RecordedAt, c.Event.RecordedAt) != "" {
			t.Fatalf("record %d = %+v; the feed's change %+v", i, e, c)
		}
		want := domain.Hash{}
		if c.Kind == domain.ChangeRecorded {
			want = domain.MetadataDigest(c.Event.Metadata)
		}
		if e.Digest != want || rs[i].Digest != want {
			t.Fatalf("change %d: digest %s (stored %s), want %s of %s", c.Position, e.Digest, rs[i].Digest, want, c.Event.Metadata)
		}
		if rs[i].Gone || rs[i].Emptied {
			t.Fatalf("change %d: gone %v, emptied %v", c.Position, rs[i].Gone, rs[i].Emptied)
		}
	}
	heads := relink(t, rs)
	checkHeads(t, s, heads)
	if res := verifyAll(t, s); res.Checked != int64(len(rs)) || res.Users != 4 {
		t.Fatalf("verified %+v; want %d changes of 4 users", res, len(rs))
	}

	// One user's records are that user's part of the whole.
	var want []domain.ChainRecord
	for _, r := range rs {
		if r.Entry.UserID == 2 {
			want = append(want, r)
		}
	}
	got := records(t, s, 2, 5)
	if len(got) != len(want) {
		t.Fatalf("user 2: %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Entry != want[i].Entry || got[i].Link != want[i].Link {
			t.Fatalf("user 2's record %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	// An erasure is a link of its own; the records it emptied keep the
	// digest they were linked with.
	er, err := s.Erase(ctx, domain.Erasure{UserID: 1, From: base, To: base.Add(time.Millisecond), By: "admin", At: now.Add(time.Hour)})
	if err != nil || er.Count == 0 {
		t.Fatalf("Erase: %+v, %v", er, err)
	}
	rs = records(t, s, 1, 1000)
	last := rs[len(rs)-1]
	if last.Entry.Kind != domain.ChangeErased || last.Erasure == nil || last.Entry.Digest != domain.ErasureDigest(*last.Erasure) ||
		last.Digest != last.Entry.Digest || last.Entry.EventID != (domain.ID{}) || diffTime(last.Entry.At, er.At) != "" {
		t.Fatalf("the erasure's record = %+v", last)
	}
	emptied := 0
	for _, r := range rs {
		if r.Emptied && r.Entry.Kind == domain.ChangeRecorded {
			emptied++
			if r.Entry.Digest != domain.MetadataDigest([]byte("{}")) {
				t.Fatalf("change %d emptied: its entry's digest is not of {}", r.Entry.Position)
			}
		}
	}
	if emptied != int(er.Count) {
		t.Fatalf("%d records emptied, the erasure counted %d", emptied, er.Count)
	}
	verifyAll(t, s)
}

// testChainsConcurrent: single creates, batches and status changes of the
// same users at once still make one chain per user, in position order,
// that verifies, with heads that match.
func testChainsConcurrent(t *testing.T, s ports.Store) {
	ctx := t.Context()
	base := time.Now().UTC().Truncate(time.Second)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		events []domain.Event
		errs   = make(chan error, 64)
	)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range 25 {
				at := base.Add(time.Duration(w*1000+i) * time.Millisecond)
				user := int64(1 + r.IntN(3))
				switch w % 3 {
				case 0:
					e := newEvent(t, user, "login", at, at, fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))
					if _, _, err := s.Create(ctx, e, "w"); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					events = append(events, e)
					mu.Unlock()
				case 1:
					es := []domain.Event{
						newEvent(t, user, "upload_file", at, at, `{}`),
						newEvent(t, user, "upload_file", at.Add(time.Microsecond), at, `{"x":1}`),
						newEvent(t, 1+user%3, "upload_file", at.Add(2*time.Microsecond), at, `{}`),
					}
					if _, err := s.CreateMany(ctx, es, "w"); err != nil {
						errs <- err
						return
					}
				case 2:
					mu.Lock()
					var e domain.Event
					if len(events) > 0 {
						e = events[r.IntN(len(events))]
					}
					mu.Unlock()
					if e.UserID == 0 {
						continue
					}
					_, err := s.SetStatus(ctx, e.ID, domain.StatusPending, domain.StatusInProgress, at, "w")
					if err != nil && !errors.Is(err, domain.ErrStatusConflict) {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rs := records(t, s, 0, 50)
	checkHeads(t, s, relink(t, rs))
	verifyAll(t, s)
}

// testCheckpoints: checkpoints round-trip with their leaves, list newest
// first with paging, refuse a second one at a position, and only the
// newest ports.KeptLeaves keep their leaves.
func testCheckpoints(t *testing.T, s ports.Store) {
	ctx := t.Context()
	if cps, err := s.Checkpoints(ctx, 0, 10); err != nil || len(cps) != 0 {
		t.Fatalf("Checkpoints of an empty store: %v, %v", cps, err)
	}
	if _, err := s.CheckpointLeaves(ctx, 1); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("CheckpointLeaves of none: %v, want ErrNotFound", err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	base := time.Now().UTC().Truncate(time.Second)
	mk := func(pos int64) (domain.Checkpoint, []domain.ChainHead) {
		leaves := []domain.ChainHead{
			{UserID: 3, Position: pos - 1, Count: pos, Link: domain.MetadataDigest([]byte(fmt.Sprint(pos)))},
			{UserID: 9, Position: pos, Count: 1, Link: domain.MetadataDigest([]byte(fmt.Sprint(-pos)))},
		}
		hs := []domain.Hash{leaves[0].Leaf(), leaves[1].Leaf()}
		c := domain.Checkpoint{Position: pos, At: base.Add(time.Duration(pos) * time.Second), Users: 2, Root: domain.MerkleRoot(hs)}
		return c.Sign(key), leaves
	}
	n := ports.KeptLeaves + 3
	for i := 1; i <= n; i++ {
		c, leaves := mk(int64(i * 10))
		if err := s.SaveCheckpoint(ctx, c, leaves); err != nil {
			t.Fatal(err)
		}
	}
	c, leaves := mk(20)
	if err := s.SaveCheckpoint(ctx, c, leaves); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("a second checkpoint at 20: %v, want ErrConflict", err)
	}
	var all []domain.Checkpoint
	before := int64(0)
	for {
		page, err := s.Checkpoints(ctx, before, 4)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 4 {
			break
		}
		before = page[len(page)-1].Position
	}
	if len(all) != n {
		t.Fatalf("listed %d checkpoints, saved %d", len(all), n)
	}
	for i, got := range all {
		want, wantLeaves := mk(int64((n - i) * 10))
		if got.Position != want.Position || !got.At.Equal(want.At) || got.Users != want.Users || got.Root != want.Root ||
			got.KeyID != want.KeyID || string(got.Signature) != string(want.Signature) {
			t.Fatalf("checkpoint %d = %+v, want %+v", i, got, want)
		}
		if err := got.Verify(key.Public().(ed25519.PublicKey)); err != nil {
			t.Fatalf("checkpoint %d: %v", got.Position, err)
		}
		ls, err := s.CheckpointLeaves(ctx, got.Position)
		switch {
		case i < ports.KeptLeaves:
			if err != nil || len(ls) != 2 || ls[0] != wantLeaves[0] || ls[1] != wantLeaves[1] {
				t.Fatalf("leaves of checkpoint %d = %+v, %v; want %+v", got.Position, ls, err, wantLeaves)
			}
		default:
			if !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("leaves of old checkpoint %d: %v, want ErrNotFound (only %d are kept)", got.Position, err, ports.KeptLeaves)
			}
		}
	}
}
