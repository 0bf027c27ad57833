package storagetest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// feed reads the whole feed of user (0: every user's) after after, in
// pages of limit.
func feed(t *testing.T, s ports.Store, after, user int64, limit int) []domain.Change {
	t.Helper()
	var out []domain.Change
	for {
		page, err := s.Changes(t.Context(), domain.ChangeFilter{After: after, UserID: user, Limit: limit})
		if err != nil {
			t.Fatalf("Changes(after %d, user %d): %v", after, user, err)
		}
		if len(page) > limit {
			t.Fatalf("Changes(limit %d) returned %d", limit, len(page))
		}
		out = append(out, page...)
		if len(page) < limit {
			return out
		}
		after = page[len(page)-1].Position
	}
}

// testChanges: every kind of write (a single create, a batch, an import,
// a status change) records its changes, numbered 1, 2, 3... with no hole;
// writes that change nothing (a repeated id, a stale compare-and-set)
// record nothing; a change shows the event as the change left it; a user's
// feed holds that user's changes only; paging by position loses nothing.
func testChanges(t *testing.T, s ports.Store) {
	ctx := t.Context()
	if head, err := s.FeedHead(ctx); err != nil || head != 0 {
		t.Fatalf("FeedHead of an empty store = %d, %v; want 0", head, err)
	}
	if got := feed(t, s, 0, 0, 10); len(got) != 0 {
		t.Fatalf("an empty store's feed: %d changes", len(got))
	}
	base := time.Now().UTC().Truncate(time.Second)
	a := newEvent(t, 7, "login", base, base, `{"ip":"10.0.0.1","nested":{"q":"\"x\"\n"}}`)
	if _, _, err := s.Create(ctx, a, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, created, err := s.Create(ctx, a, "alice"); err != nil || created {
		t.Fatalf("Create of a stored id: created %v, %v", created, err)
	}
	b := newEvent(t, 8, "upload_file", base.Add(time.Millisecond), base, "")
	c := newEvent(t, 7, "deleted", base.Add(2*time.Millisecond), base, "")
	c.ID = domain.KeyID(7, "client-chose-this") // a claimed id, not a server-made one
	if _, err := s.CreateMany(ctx, []domain.Event{b, c, a}, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, a.ID, domain.StatusPending, domain.StatusInProgress, base.Add(time.Second), "carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, a.ID, domain.StatusPending, domain.StatusInProgress, base.Add(time.Second), "carol"); err == nil {
		t.Fatal("a stale compare-and-set succeeded")
	}
	if _, err := s.SetStatus(ctx, a.ID, domain.StatusInProgress, domain.StatusDone, base.Add(2*time.Second), "carol"); err != nil {
		t.Fatal(err)
	}
	old := domain.Normalize(time.Date(2020, 3, 1, 12, 0, 0, 0, time.UTC))
	imp := imported(t, 42, 9, domain.StatusDone, old)
	imp.UpdatedAt = old.Add(time.Hour)
	if _, err := s.Import(ctx, []domain.Event{imp}, "import:test"); err != nil {
		t.Fatal(err)
	}

	type want struct {
		kind    domain.ChangeKind
		id      domain.ID
		status  domain.Status
		at      time.Time
		updated time.Time
	}
	wants := []want{
		{domain.ChangeRecorded, a.ID, domain.StatusPending, a.RecordedAt, a.UpdatedAt},
		{domain.ChangeRecorded, b.ID, domain.StatusPending, b.RecordedAt, b.UpdatedAt},
		{domain.ChangeRecorded, c.ID, domain.StatusPending, c.RecordedAt, c.UpdatedAt},
		{domain.ChangeStatus, a.ID, domain.StatusInProgress, base.Add(time.Second), base.Add(time.Second)},
		{domain.ChangeStatus, a.ID, domain.StatusDone, base.Add(2 * time.Second), base.Add(2 * time.Second)},
		{domain.ChangeRecorded, imp.ID, domain.StatusDone, old, imp.UpdatedAt},
	}
	got := feed(t, s, 0, 0, 100)
	if len(got) != len(wants) {
		t.Fatalf("feed has %d changes, want %d: %+v", len(got), len(wants), got)
	}
	// b and c share a batch: their order within it is the store's.
	if got[1].Event.ID == c.ID {
		wants[1], wants[2] = wants[2], wants[1]
	}
	for i, w := range wants {
		g := got[i]
		if g.Position != int64(i+1) {
			t.Errorf("change %d at position %d, want %d (no holes)", i, g.Position, i+1)
		}
		if g.Kind != w.kind || g.Event.ID != w.id || g.Event.Status != w.status {
			t.Errorf("change %d = %s %s %s, want %s %s %s", i, g.Kind, g.Event.ID, g.Event.Status, w.kind, w.id, w.status)
		}
		if d := diffTime(g.At, w.at); d != "" {
			t.Errorf("change %d at: %s", i, d)
		}
		if d := diffTime(g.Event.UpdatedAt, w.updated); d != "" {
			t.Errorf("change %d updated_at: %s", i, d)
		}
	}
	checkEvent(t, "the first change's event (metadata as stored)", got[0].Event, a)
	if h, err := s.FeedHead(ctx); err != nil || h != int64(len(wants)) {
		t.Errorf("FeedHead = %d, %v; want %d", h, err, len(wants))
	}
	for _, limit := range []int{1, 2, 5} {
		paged := feed(t, s, 0, 0, limit)
		if len(paged) != len(got) {
			t.Errorf("paging by %d: %d changes, want %d", limit, len(paged), len(got))
		}
	}
	if rest := feed(t, s, 4, 0, 100); len(rest) != 2 || rest[0].Position != 5 {
		t.Errorf("after 4: %+v, want positions 5 and 6", rest)
	}
	mine := feed(t, s, 0, 7, 1)
	if len(mine) != 4 {
		t.Fatalf("user 7's feed: %d changes, want 4", len(mine))
	}
	for _, c := range mine {
		if c.Event.UserID != 7 {
			t.Errorf("user 7's feed holds a change of user %d", c.Event.UserID)
		}
	}
	if none := feed(t, s, 0, 12345, 10); len(none) != 0 {
		t.Errorf("a user without events has %d changes", len(none))
	}
	// A large batch (PostgreSQL copies it) is numbered in the batch's order.
	big := make([]domain.Event, 150)
	for i := range big {
		big[i] = newEvent(t, int64(20+i%3), "viewed", base.Add(time.Duration(10+i)*time.Millisecond), base, "")
	}
	if _, err := s.CreateMany(ctx, big, "bulk"); err != nil {
		t.Fatal(err)
	}
	after := feed(t, s, int64(len(wants)), 0, 1000)
	if len(after) != len(big) {
		t.Fatalf("the batch of %d recorded %d changes", len(big), len(after))
	}
	for i, c := range after {
		if c.Position != int64(len(wants)+1+i) || c.Event.ID != big[i].ID || c.Kind != domain.ChangeRecorded {
			t.Fatalf("batch change %d = %d %s %s, want %d %s", i, c.Position, c.Kind, c.Event.ID, len(wants)+1+i, big[i].ID)
		}
	}
}

// testChangesConcurrent: writers of every kind at once while a reader
// follows the feed; the reader sees positions 1, 2, 3... each exactly
// once, never one below a position it has seen, and ends with every
// change made.
func testChangesConcurrent(t *testing.T, s ports.Store) {
	const writers, rounds = 6, 15
	ctx := t.Context()
	base := time.Now().UTC().Truncate(time.Millisecond)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		made int // changes acknowledged
	)
	done := make(chan struct{})
	var seen []domain.Change
	readerErr := make(chan error, 1)
	go func() {
		var after int64
		var err error
		for finished := false; ; {
			select {
			case <-done:
				finished = true
			default:
			}
			page, perr := s.Changes(ctx, domain.ChangeFilter{After: after, Limit: 1 + rand.IntN(20)})
			if perr != nil {
				err = perr
				break
			}
			for _, c := range page {
				if c.Position != after+1 {
					err = fmt.Errorf("after position %d the feed gave %d", after, c.Position)
					break
				}
				after = c.Position
				seen = append(seen, c)
			}
			if err != nil || (finished && len(page) == 0) {
				break
			}
		}
		readerErr <- err
	}()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				at := base.Add(time.Duration(w*rounds+r) * time.Millisecond)
				e := newEvent(t, int64(w+1), "login", at, at, "")
				switch r % 3 {
				case 0:
					if _, _, err := s.Create(ctx, e, "w"); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					made++
					mu.Unlock()
				case 1:
					f := newEvent(t, int64(w+1), "upload_file", at.Add(time.Microsecond), at, "")
					if _, err := s.CreateMany(ctx, []domain.Event{e, f}, "w"); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					made += 2
					mu.Unlock()
				case 2:
					if _, _, err := s.Create(ctx, e, "w"); err != nil {
						t.Error(err)
						return
					}
					if _, err := s.SetStatus(ctx, e.ID, domain.StatusPending, domain.StatusInProgress, at.Add(time.Second), "w"); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					made += 2
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	if err := <-readerErr; err != nil {
		t.Fatal(err)
	}
	if len(seen) != made {
		t.Fatalf("the reader saw %d changes, %d were made", len(seen), made)
	}
	all := feed(t, s, 0, 0, 1000)
	for i := range all {
		if all[i].Position != seen[i].Position || all[i].Event.ID != seen[i].Event.ID || all[i].Kind != seen[i].Kind {
			t.Fatalf("change %d: the follower saw %d %s %s, the store has %d %s %s", i,
				seen[i].Position, seen[i].Kind, seen[i].Event.ID, all[i].Position, all[i].Kind, all[i].Event.ID)
		}
	}
}

// testErase: an erasure empties the metadata of the user's events in its
// range only, keeps everything else, is one change of the feed (in the
// user's own feed too) carrying who, when, how many and the range, and
// erases nothing the second time.
func testErase(t *testing.T, s ports.Store) {
	ctx := t.Context()
	base := time.Now().UTC().Truncate(time.Second)
	in := newEvent(t, 5, "login", base, base, `{"ip":"10.0.0.1"}`)
	out := newEvent(t, 5, "login", base.Add(time.Hour), base, `{"ip":"10.0.0.2"}`)
	empty := newEvent(t, 5, "login", base.Add(time.Minute), base, `{}`)
	other := newEvent(t, 6, "login", base, base, `{"ip":"10.0.0.3"}`)
	if _, err := s.CreateMany(ctx, []domain.Event{in, out, empty, other}, "w"); err != nil {
		t.Fatal(err)
	}
	at := base.Add(2 * time.Hour)
	e := domain.Erasure{UserID: 5, From: base.Add(-time.Hour), To: base.Add(30 * time.Minute), By: "admin", At: at}
	got, err := s.Erase(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if got.Count != 1 {
		t.Fatalf("Erase counted %d, want 1 (one event in range with metadata)", got.Count)
	}
	for _, c := range []struct {
		e    domain.Event
		want string
	}{{in, `{}`}, {out, `{"ip":"10.0.0.2"}`}, {empty, `{}`}, {other, `{"ip":"10.0.0.3"}`}} {
		stored, err := s.Get(ctx, c.e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if string(stored.Metadata) != c.want {
			t.Errorf("event %s metadata = %s, want %s", c.e.ID, stored.Metadata, c.want)
		}
		if stored.Action != c.e.Action || stored.Status != c.e.Status || diffTime(stored.RecordedAt, c.e.RecordedAt) != "" {
			t.Errorf("the erasure changed more than metadata: %+v", stored)
		}
	}
	changes := feed(t, s, 0, 5, 100)
	last := changes[len(changes)-1]
	if last.Kind != domain.ChangeErased || last.Erasure == nil {
		t.Fatalf("user 5's last change = %+v, want the erasure", last)
	}
	if er := *last.Erasure; er.UserID != 5 || er.Count != 1 || er.By != "admin" || diffTime(er.At, at) != "" ||
		diffTime(er.From, e.From) != "" || diffTime(er.To, e.To) != "" {
		t.Errorf("the erasure's change = %+v, want %+v with count 1", er, e)
	}
	if changes[0].Event.ID == in.ID && string(changes[0].Event.Metadata) != `{}` {
		t.Errorf("the feed still shows erased metadata: %s", changes[0].Event.Metadata)
	}
	for _, c := range feed(t, s, 0, 6, 100) {
		if c.Kind == domain.ChangeErased {
			t.Error("user 6's feed holds user 5's erasure")
		}
	}
	head, _ := s.FeedHead(ctx)
	again, err := s.Erase(ctx, e)
	if err != nil || again.Count != 0 {
		t.Errorf("erasing again: %+v, %v; want nothing erased", again, err)
	}
	if h, _ := s.FeedHead(ctx); h != head {
		t.Errorf("erasing nothing recorded a change: head %d → %d", head, h)
	}
	all, err := s.Erase(ctx, domain.Erasure{UserID: 5, By: "admin", At: at})
	if err != nil || all.Count != 1 || !all.From.IsZero() || !all.To.IsZero() {
		t.Errorf("erasing every event of user 5: %+v, %v; want the one left", all, err)
	}
}
