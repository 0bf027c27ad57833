package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
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
	all, err := feed.Changes(ctx, feedAdmin, app.FeedQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Changes) != 3 || all.Next != 3 {
		t.Fatalf("admin's feed: %d changes, next %d; want 3, 3", len(all.Changes), all.Next)
	}
	if c := all.Changes[2]; c.Kind != domain.ChangeStatus || c.Event.ID != a.ID || c.Event.Status != domain.StatusInProgress {
		t.Errorf("third change = %s %s %s", c.Kind, c.Event.ID, c.Event.Status)
	}
	mine, err := feed.Changes(ctx, feedAlice, app.FeedQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(mine.Changes) != 2 || mine.Changes[0].Position != 1 || mine.Changes[1].Position != 3 {
		t.Errorf("alice's feed: %+v, want positions 1 and 3", mine.Changes)
	}
	rest, err := feed.Changes(ctx, feedAdmin, app.FeedQuery{After: "1", Limit: "1"})
	if err != nil || len(rest.Changes) != 1 || rest.Next != 2 {
		t.Errorf("after 1, limit 1: %+v, %v; want position 2", rest, err)
	}
	empty, err := feed.Changes(ctx, feedAdmin, app.FeedQuery{After: "3"})
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
		page, err := feed.Changes(ctx, feedAlice, app.FeedQuery{Wait: "30s"})
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

	page, err := feed.Changes(ctx, feedAlice, app.FeedQuery{After: "2", Wait: "0.2s"})
	if err != nil || len(page.Changes) != 0 || page.Next != 2 {
		t.Errorf("an idle wait: %+v, %v", page, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := feed.Changes(cctx, feedAlice, app.FeedQuery{After: "2", Wait: "10s"}); !errors.Is(err, context.Canceled) {
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
		page, err := feed.Changes(context.Background(), feedAdmin, app.FeedQuery{Wait: "20s"})
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
