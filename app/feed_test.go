package app_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/stores"
	"github.com/activityd/activityd/test/testenv"
)

var (
	feedAdmin = domain.Principal{Name: "test:admin", Scopes: []domain.Scope{domain.ScopeAdmin}}
	feedAlice = domain.Principal{Name: "alice", UserID: 1, Scopes: []domain.Scope{domain.ScopeRead, domain.ScopeWrite}}
	feedBob   = domain.Principal{Name: "bob", UserID: 2, Scopes: []domain.Scope{domain.ScopeRead, domain.ScopeWrite}}
)

// newFeedFixture is an events use case whose writes wake the feed; poll is
// long, so a test that sees a wake-up before it saw Notify work.
func newFeedFixture(t *testing.T) (*app.Events, *app.Feed) {
	t.Helper()
	store := stores.Memory(t)
	feed := app.NewFeed(store, time.Hour)
	events := app.NewEvents(store, testenv.NewClock(start), domain.DefaultLimits(), app.NotifyWrites(feed.Notify))
	return events, feed
}

func TestFeedParse(t *testing.T) {
	_, feed := newFeedFixture(t)
	for _, tc := range []struct {
		name   string
		p      domain.Principal
		q      app.FeedQuery
		fields []string // invalid fields; nil: valid
		forbid bool
		want   app.FeedRead
	}{
		{name: "defaults, admin", p: feedAdmin, want: app.FeedRead{Limit: app.FeedDefaultLimit}},
		{name: "a user reads its own", p: feedAlice, want: app.FeedRead{UserID: 1, Limit: app.FeedDefaultLimit}},
		{name: "every field", p: feedAdmin, q: app.FeedQuery{After: "42", UserID: "7", Limit: "1000", Wait: "30s"},
			want: app.FeedRead{After: 42, UserID: 7, Limit: 1000, Wait: 30 * time.Second}},
		{name: "wait in seconds", p: feedAlice, q: app.FeedQuery{Wait: "60"}, want: app.FeedRead{UserID: 1, Limit: app.FeedDefaultLimit, Wait: time.Minute}},
		{name: "another user's", p: feedAlice, q: app.FeedQuery{UserID: "2"}, forbid: true},
		{name: "bad values", p: feedAdmin, q: app.FeedQuery{After: "-1", UserID: "x", Limit: "1001", Wait: "61s"},
			fields: []string{"after", "limit", "wait", "user_id"}},
		{name: "more bad values", p: feedAdmin, q: app.FeedQuery{After: "1.5", Limit: "0", Wait: "soon"},
			fields: []string{"after", "limit", "wait"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := feed.Parse(tc.p, tc.q)
			switch {
			case tc.forbid:
				wantErr(t, err, domain.ErrForbidden)
			case tc.fields != nil:
				wantFields(t, err, tc.fields...)
			case err != nil:
				t.Fatal(err)
			case got != tc.want:
				t.Errorf("Parse = %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := feed.Parse(domain.Principal{Name: "w", UserID: 1, Scopes: []domain.Scope{domain.ScopeWrite}}, app.FeedQuery{}); !errors.Is(err, domain.ErrForbidden) {
		t.Errorf("a write-only credential reads the feed: %v", err)
	}
}

// TestFeedChanges: records and transitions appear in order, a user sees
// only its own, and Next continues where the page ended.
func TestFeedChanges(t *testing.T) {
	events, feed := newFeedFixture(t)
	ctx := context.Background()
	a, _, err := events.Record(ctx, feedAlice, domain.NewEvent{Action: "login"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := events.Record(ctx, feedBob, domain.NewEvent{Action: "upload_file"}); err != nil {
		t.Fatal(err)
	}
	if _, err := events.Transition(ctx, feedAlice, a.ID.String(), "IN_PROGRESS"); err != nil {
		t.Fatal(err)
	}
	all, err := feed.List(ctx, feedAdmin, app.FeedQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Changes) != 3 || all.Next != 3 {
		t.Fatalf("admin's feed: %d changes, next %d; want 3, 3", len(all.Changes), all.Next)
	}
	if c := all.Changes[2]; c.Kind != domain.ChangeStatus || c.Event.ID != a.ID || c.Event.Status != domain.StatusInProgress {
		t.Errorf("third change = %s %s %s", c.Kind, c.Event.ID, c.Event.Status)
	}
	mine, err := feed.List(ctx, feedAlice, app.FeedQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(mine.Changes) != 2 || mine.Changes[0].Position != 1 || mine.Changes[1].Position != 3 {
		t.Errorf("alice's feed: %+v, want positions 1 and 3", mine.Changes)
	}
	rest, err := feed.List(ctx, feedAdmin, app.FeedQuery{After: "1", Limit: "1"})
	if err != nil || len(rest.Changes) != 1 || rest.Next != 2 {
		t.Errorf("after 1, limit 1: %+v, %v; want position 2", rest, err)
	}
	empty, err := feed.List(ctx, feedAdmin, app.FeedQuery{After: "3"})
	if err != nil || len(empty.Changes) != 0 || empty.Next != 3 {
		t.Errorf("after the head: %+v, %v; want nothing, next 3", empty, err)
	}
}

// TestFeedWait: a long poll returns as soon as a write of this process
// lands (not at the poll interval, an hour here), and returns empty at
// the end of its wait otherwise.
func TestFeedWait(t *testing.T) {
	events, feed := newFeedFixture(t)
	ctx := context.Background()
	got := make(chan app.FeedPage, 1)
	go func() {
		page, err := feed.List(ctx, feedAlice, app.FeedQuery{Wait: "30s"})
		if err != nil {
			t.Error(err)
		}
		got <- page
	}()
	time.Sleep(50 * time.Millisecond) // let it wait
	// Bob's change does not answer Alice's wait; hers does.
	if _, _, err := events.Record(ctx, feedBob, domain.NewEvent{Action: "login"}); err != nil {
		t.Fatal(err)
	}
	select {
	case page := <-got:
		t.Fatalf("woken by another user's change: %+v", page)
	case <-time.After(100 * time.Millisecond):
	}
	began := time.Now()
	if _, _, err := events.Record(ctx, feedAlice, domain.NewEvent{Action: "login"}); err != nil {
		t.Fatal(err)
	}
	select {
	case page := <-got:
		if len(page.Changes) != 1 || page.Changes[0].Event.UserID != 1 || page.Next != 2 {
			t.Errorf("woken with %+v, want alice's change at 2", page)
		}
		if d := time.Since(began); d > 5*time.Second {
			t.Errorf("woken after %s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a long poll was not woken by a write")
	}

	page, err := feed.List(ctx, feedAlice, app.FeedQuery{After: "2", Wait: "0.2s"})
	if err != nil || len(page.Changes) != 0 || page.Next != 2 {
		t.Errorf("an idle wait: %+v, %v", page, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := feed.List(cctx, feedAlice, app.FeedQuery{After: "2", Wait: "10s"}); !errors.Is(err, context.Canceled) {
		t.Errorf("a canceled wait: %v", err)
	}
}

// TestFeedPoll: a change another process made (here: straight into the
// store, no Notify) reaches a waiting reader at the poll interval.
func TestFeedPoll(t *testing.T) {
	store := stores.Memory(t)
	feed := app.NewFeed(store, 20*time.Millisecond)
	done := make(chan app.FeedPage, 1)
	go func() {
		page, err := feed.List(context.Background(), feedAdmin, app.FeedQuery{Wait: "20s"})
		if err != nil {
			t.Error(err)
		}
		done <- page
	}()
	time.Sleep(50 * time.Millisecond)
	e := domain.Event{ID: domain.NewID(start), UserID: 1, Action: "login", RecordedAt: start, OccurredAt: start, UpdatedAt: start, Status: domain.StatusPending}
	if _, _, err := store.Create(context.Background(), e, "elsewhere"); err != nil {
		t.Fatal(err)
	}
	select {
	case page := <-done:
		if len(page.Changes) != 1 {
			t.Errorf("polled %+v", page)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a change made elsewhere never reached the waiting reader")
	}
}

// countingChanges counts the store reads of the feed.
type countingChanges struct {
	store ports.Changes
	mu    sync.Mutex
	reads int
}

func (c *countingChanges) FeedHead(ctx context.Context) (int64, error) { return c.store.FeedHead(ctx) }

func (c *countingChanges) Changes(ctx context.Context, f domain.ChangeFilter) ([]domain.Change, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.store.Changes(ctx, f)
}

// TestFeedTail: readers at the head are served from the tail, one store
// read for all of them; what they get is the store's order exactly; a
// user's empty page moves its next position on; an erasure empties the
// metadata the tail holds.
func TestFeedTail(t *testing.T) {
	store := stores.Memory(t)
	counting := &countingChanges{store: store}
	feed := app.NewFeed(counting, time.Hour)
	events := app.NewEvents(store, testenv.NewClock(start), domain.DefaultLimits(), app.NotifyWrites(feed.Notify),
		app.ForgetErasures(feed.Erased))
	ctx := context.Background()
	// The tail starts at the head: earlier changes come from the store.
	if _, _, err := events.Record(ctx, feedAlice, domain.NewEvent{Action: "login", Metadata: []byte(`{"ip":"10.0.0.1"}`)}); err != nil {
		t.Fatal(err)
	}
	if page, err := feed.List(ctx, feedAdmin, app.FeedQuery{}); err != nil || len(page.Changes) != 1 {
		t.Fatalf("from the start: %+v, %v", page, err)
	}
	const readers = 10
	var wg sync.WaitGroup
	got := make([][]domain.Change, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			after := int64(1)
			for len(got[i]) < 20 {
				page, err := feed.Read(ctx, app.FeedRead{After: after, Limit: 7, Wait: 10 * time.Second})
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = append(got[i], page.Changes...)
				after = page.Next
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	counting.mu.Lock()
	counting.reads = 0
	counting.mu.Unlock()
	for i := range 20 {
		p := feedAlice
		if i%2 == 1 {
			p = feedBob
		}
		if _, _, err := events.Record(ctx, p, domain.NewEvent{Action: "login", Metadata: []byte(`{"ip":"10.0.0.1"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	counting.mu.Lock()
	reads := counting.reads
	counting.mu.Unlock()
	if reads > 20+readers { // one per write at most (plus a last empty look each), not one per reader per write
		t.Errorf("%d store reads for %d readers of 20 writes", reads, readers)
	}
	want, err := store.Changes(ctx, domain.ChangeFilter{After: 1, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := range readers {
		if len(got[i]) != len(want) {
			t.Fatalf("reader %d got %d changes, want %d", i, len(got[i]), len(want))
		}
		for k := range want {
			if got[i][k].Position != want[k].Position || got[i][k].Event.ID != want[k].Event.ID {
				t.Fatalf("reader %d, change %d: %d %s, want %d %s", i, k, got[i][k].Position, got[i][k].Event.ID, want[k].Position, want[k].Event.ID)
			}
		}
	}
	// Bob's last change is 21; Alice's page after it is empty, and moves on.
	page, err := feed.Read(ctx, app.FeedRead{After: 20, UserID: 1, Limit: 10})
	if err != nil || len(page.Changes) != 0 || page.Next != 21 {
		t.Errorf("alice after 20: %+v, %v; want nothing, next 21", page, err)
	}
	if _, err := events.Erase(ctx, feedAdmin, app.ErasureQuery{UserID: "1"}); err != nil {
		t.Fatal(err)
	}
	page, err = feed.Read(ctx, app.FeedRead{After: 1, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range page.Changes {
		if c.Erasure == nil && c.Event.UserID == 1 && string(c.Event.Metadata) != "{}" {
			t.Fatalf("the tail still serves erased metadata: %+v", c)
		}
	}
	// The erasure itself comes next (a page from the tail ends at its end).
	rest, err := feed.Read(ctx, app.FeedRead{After: page.Next, Limit: 100})
	if err != nil || len(rest.Changes) != 1 || rest.Changes[0].Kind != domain.ChangeErased || rest.Changes[0].Erasure.Count != 11 {
		t.Errorf("after %d: %+v, %v; want the erasure of 11 events", page.Next, rest, err)
	}
}

// TestFeedTailOfAnotherProcess: a tail that stopped being read forgets,
// within the poll interval, metadata another process erased; a reader
// whose position lies beyond an idle tail gets the changes after it.
func TestFeedTailOfAnotherProcess(t *testing.T) {
	store := stores.Memory(t)
	ctx := context.Background()
	a := app.NewEvents(store, testenv.NewClock(start), domain.DefaultLimits()) // another process: no feed here
	b := app.NewFeed(store, 20*time.Millisecond)
	if _, err := b.List(ctx, feedAdmin, app.FeedQuery{}); err != nil { // b's tail starts at the head (0)
		t.Fatal(err)
	}
	if _, _, err := a.Record(ctx, feedAlice, domain.NewEvent{Action: "login", Metadata: []byte(`{"email":"a@example.com"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Record(ctx, feedAlice, domain.NewEvent{Action: "login"}); err != nil {
		t.Fatal(err)
	}
	if page, err := b.Read(ctx, app.FeedRead{After: 0, Limit: 100}); err != nil || len(page.Changes) != 2 {
		t.Fatalf("b reads %+v, %v", page, err) // now in b's tail
	}
	if _, err := a.Erase(ctx, feedAdmin, app.ErasureQuery{UserID: "1"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond) // past b's poll interval
	page, err := b.Read(ctx, app.FeedRead{After: 0, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if md := string(page.Changes[0].Event.Metadata); md != "{}" {
		t.Errorf("b's tail serves %s after another process erased it", md)
	}
	// Beyond b's tail: 3 more changes elsewhere, a reader after 4 gets the 5th.
	for range 3 {
		if _, _, err := a.Record(ctx, feedBob, domain.NewEvent{Action: "login"}); err != nil {
			t.Fatal(err)
		}
	}
	page, err = b.Read(ctx, app.FeedRead{After: 5, Limit: 10})
	if err != nil || len(page.Changes) != 1 || page.Changes[0].Position != 6 {
		t.Errorf("after 5: %+v, %v; want position 6", page, err)
	}
}
