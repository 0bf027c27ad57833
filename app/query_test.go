package app_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/test/testenv"
)

func TestGetWithHistory(t *testing.T) {
	fx := newFixture(t)
	e := fx.record(t, alice, domain.NewEvent{Action: "upload_file"})
	t1 := domain.Normalize(fx.clock.Advance(time.Minute))
	if _, err := fx.events.Transition(fx.ctx, alice, e.ID.String(), "IN_PROGRESS"); err != nil {
		t.Fatal(err)
	}
	t2 := domain.Normalize(fx.clock.Advance(time.Minute))
	if _, err := fx.events.Transition(fx.ctx, admin, e.ID.String(), "DONE"); err != nil {
		t.Fatal(err)
	}
	got, hist, err := fx.events.Get(fx.ctx, alice, e.ID.String())
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != domain.StatusDone || !got.UpdatedAt.Equal(t2) || !got.RecordedAt.Equal(e.RecordedAt) {
		t.Errorf("event = %+v", got)
	}
	want := []domain.Transition{
		{From: "", To: domain.StatusPending, At: e.RecordedAt, By: alice.Name},
		{From: domain.StatusPending, To: domain.StatusInProgress, At: t1, By: alice.Name},
		{From: domain.StatusInProgress, To: domain.StatusDone, At: t2, By: admin.Name},
	}
	if !slices.EqualFunc(hist, want, func(a, b domain.Transition) bool {
		return a.From == b.From && a.To == b.To && a.At.Equal(b.At) && a.By == b.By
	}) {
		t.Errorf("history = %+v, want %+v", hist, want)
	}
}

func TestGetVisibility(t *testing.T) {
	fx := newFixture(t)
	e := fx.record(t, alice, domain.NewEvent{Action: "login"})
	id := e.ID.String()
	tests := []struct {
		name    string
		p       domain.Principal
		id      string
		wantErr error
	}{
		{"owner", alice, id, nil},
		{"owner, upper-case id", alice, upper(id), nil},
		{"admin", admin, id, nil},
		{"read-only owner", reader, id, nil},
		{"other user", bob, id, domain.ErrNotFound},
		{"owner without read scope", writer, id, domain.ErrForbidden},
		{"not a UUID", alice, "42", domain.ErrNotFound},
		{"empty", alice, "", domain.ErrNotFound},
		{"unknown", admin, domain.NewID(start).String(), domain.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, hist, err := fx.events.Get(fx.ctx, tt.p, tt.id)
			if tt.wantErr == nil {
				if err != nil || got.ID != e.ID || len(hist) != 1 {
					t.Fatalf("Get = %+v, %v, %v", got, hist, err)
				}
				return
			}
			wantErr(t, err, tt.wantErr)
			if !got.ID.IsZero() || hist != nil {
				t.Errorf("a failed Get returned %+v, %v", got, hist)
			}
		})
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func TestListScoping(t *testing.T) {
	fx := newFixture(t)
	var aliceIDs, bobIDs []domain.ID
	for i := range 3 {
		aliceIDs = append(aliceIDs, fx.record(t, alice, domain.NewEvent{Action: "login"}).ID)
		fx.clock.Advance(time.Second)
		bobIDs = append(bobIDs, fx.record(t, bob, domain.NewEvent{Action: []string{"login", "viewed", "logout"}[i]}).ID)
		fx.clock.Advance(time.Second)
	}
	ids := func(p domain.Page) []domain.ID {
		out := make([]domain.ID, len(p.Events))
		for i, e := range p.Events {
			out[i] = e.ID
		}
		return out
	}
	reversed := func(s []domain.ID) []domain.ID { s = slices.Clone(s); slices.Reverse(s); return s }
	list := func(p domain.Principal, q domain.Query) (domain.Page, error) {
		l, err := fx.events.List(fx.ctx, p, q, "")
		return l.Page, err
	}

	page, err := list(alice, domain.Query{})
	if err != nil || !slices.Equal(ids(page), reversed(aliceIDs)) || page.Next != nil {
		t.Errorf("alice, no user: %v, %v; want her own events newest first", ids(page), err)
	}
	page, err = list(reader, domain.Query{UserID: "1", Order: "asc"})
	if err != nil || !slices.Equal(ids(page), aliceIDs) {
		t.Errorf("reader, own user asc: %v, %v", ids(page), err)
	}
	_, err = list(alice, domain.Query{UserID: "2"})
	wantErr(t, err, domain.ErrForbidden)
	_, err = list(writer, domain.Query{})
	wantErr(t, err, domain.ErrForbidden)
	_, err = list(alice, domain.Query{Limit: "0", Order: "sideways"})
	wantFields(t, err, "order", "limit")

	page, err = list(admin, domain.Query{})
	if err != nil || len(page.Events) != 6 {
		t.Errorf("admin, every user: %d events, %v", len(page.Events), err)
	}
	page, err = list(admin, domain.Query{UserID: "2", Actions: []string{"VIEWED", "logout"}})
	if err != nil || !slices.Equal(ids(page), []domain.ID{bobIDs[2], bobIDs[1]}) {
		t.Errorf("admin, bob's viewed/logout: %v, %v", ids(page), err)
	}

	// Paging through alice's events two at a time with the cursor.
	var all []domain.ID
	q := domain.Query{Limit: "2"}
	for range 3 {
		page, err = list(alice, q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ids(page)...)
		if page.Next == nil {
			break
		}
		q.Cursor = page.Next.Encode()
	}
	if !slices.Equal(all, reversed(aliceIDs)) {
		t.Errorf("paged = %v, want %v", all, reversed(aliceIDs))
	}

	page, err = list(alice, domain.Query{Limit: "1000"})
	for _, e := range page.Events {
		if e.UserID != alice.UserID {
			t.Errorf("alice's listing holds user %d's event", e.UserID)
		}
	}
	if err != nil || len(page.Events) == 0 {
		t.Errorf("alice's listing: %d events, %v; want hers", len(page.Events), err)
	}
	page, err = list(admin, domain.Query{Limit: "1000"})
	users := map[int64]bool{}
	for _, e := range page.Events {
		users[e.UserID] = true
	}
	if err != nil || len(users) != 2 {
		t.Errorf("admin's listing spans users %v, %v; want every user", users, err)
	}
	// A non-admin credential bound to no user cannot list.
	_, err = list(domain.Principal{Name: "jwt:?", Scopes: rw}, domain.Query{})
	wantErr(t, err, domain.ErrForbidden)
}

func TestTransitionChain(t *testing.T) {
	fx := newFixture(t)
	e := fx.record(t, alice, domain.NewEvent{Action: "upload_file"})
	id := e.ID.String()

	at := domain.Normalize(fx.clock.Advance(time.Minute))
	got, err := fx.events.Transition(fx.ctx, alice, id, "IN_PROGRESS")
	if err != nil || got.Status != domain.StatusInProgress || !got.UpdatedAt.Equal(at) || got.ID != e.ID {
		t.Fatalf("PENDING -> IN_PROGRESS = %+v, %v", got, err)
	}
	for _, to := range []string{"PENDING", "IN_PROGRESS"} {
		_, err := fx.events.Transition(fx.ctx, alice, id, to)
		var te *domain.TransitionError
		if !errors.As(err, &te) || te.From != domain.StatusInProgress || te.To != domain.Status(to) || !errors.Is(err, domain.ErrInvalidTransition) {
			t.Errorf("IN_PROGRESS -> %s = %v, want a TransitionError", to, err)
		}
	}
	got, err = fx.events.Transition(fx.ctx, alice, id, "DONE")
	if err != nil || got.Status != domain.StatusDone {
		t.Fatalf("IN_PROGRESS -> DONE = %+v, %v", got, err)
	}
	for _, to := range []string{"PENDING", "IN_PROGRESS", "DONE"} {
		_, err := fx.events.Transition(fx.ctx, alice, id, to)
		var te *domain.TransitionError
		if !errors.As(err, &te) || te.From != domain.StatusDone {
			t.Errorf("DONE -> %s = %v, want a TransitionError", to, err)
		}
	}
	if _, h, _ := fx.events.Get(fx.ctx, alice, id); len(h) != 3 {
		t.Errorf("history has %d entries, want 3: rejected moves must not be recorded", len(h))
	}
}

func TestTransitionRejections(t *testing.T) {
	fx := newFixture(t)
	e := fx.record(t, alice, domain.NewEvent{Action: "login"})
	id := e.ID.String()
	tests := []struct {
		name    string
		p       domain.Principal
		id, to  string
		wantErr error
		fields  []string
	}{
		{"skip to DONE", alice, id, "DONE", domain.ErrInvalidTransition, nil},
		{"same to same", alice, id, "PENDING", domain.ErrInvalidTransition, nil},
		{"lower case status", alice, id, "in_progress", domain.ErrInvalid, []string{"status"}},
		{"unknown status", alice, id, "CANCELLED", domain.ErrInvalid, []string{"status"}},
		{"no status", alice, id, "", domain.ErrInvalid, []string{"status"}},
		{"read-only", reader, id, "IN_PROGRESS", domain.ErrForbidden, nil},
		{"other user", bob, id, "IN_PROGRESS", domain.ErrNotFound, nil},
		{"not a UUID", alice, "abc", "IN_PROGRESS", domain.ErrNotFound, nil},
		{"unknown event", alice, domain.NewID(start).String(), "IN_PROGRESS", domain.ErrNotFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fx.events.Transition(fx.ctx, tt.p, tt.id, tt.to)
			wantErr(t, err, tt.wantErr)
			if tt.fields != nil {
				wantFields(t, err, tt.fields...)
			}
			if !got.ID.IsZero() {
				t.Errorf("a failed Transition returned %+v", got)
			}
		})
	}
	stored, hist, err := fx.events.Get(fx.ctx, alice, id)
	if err != nil || stored.Status != domain.StatusPending || len(hist) != 1 {
		t.Errorf("after rejected transitions: %+v, %d history entries, %v", stored, len(hist), err)
	}
	// The admin may move anyone's event.
	if got, err := fx.events.Transition(fx.ctx, admin, id, "IN_PROGRESS"); err != nil || got.Status != domain.StatusInProgress {
		t.Errorf("admin transition = %+v, %v", got, err)
	}
}

// gatedStore holds every Get until n of them are waiting, so that n
// concurrent transitions all read the same status before any writes.
type gatedStore struct {
	*memory.Store
	arrived sync.WaitGroup
}

func (g *gatedStore) Get(ctx context.Context, id domain.ID) (domain.Event, error) {
	e, err := g.Store.Get(ctx, id)
	g.arrived.Done()
	g.arrived.Wait()
	return e, err
}

const racers = 30

// racedTransition runs racers concurrent PENDING → IN_PROGRESS transitions
// of one event and returns their errors.
func racedTransition(t *testing.T, events *app.Events, id string) []error {
	t.Helper()
	errs := make([]error, racers)
	var wg sync.WaitGroup
	startGun := make(chan struct{})
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGun
			_, errs[i] = events.Transition(context.Background(), alice, id, "IN_PROGRESS")
		}()
	}
	close(startGun)
	wg.Wait()
	return errs
}

func checkOneWinner(t *testing.T, errs []error, wantConflicts int) {
	t.Helper()
	wins, conflicts := 0, 0
	for _, err := range errs {
		var te *domain.TransitionError
		switch {
		case err == nil:
			wins++
		case errors.Is(err, domain.ErrStatusConflict):
			conflicts++
		case errors.As(err, &te) && te.From == domain.StatusInProgress && te.To == domain.StatusInProgress:
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d transitions won, want exactly 1", wins)
	}
	if wantConflicts >= 0 && conflicts != wantConflicts {
		t.Errorf("%d lost with ErrStatusConflict, want %d", conflicts, wantConflicts)
	}
}

func TestTransitionConcurrentOneWins(t *testing.T) {
	fx := newFixture(t)
	e := fx.record(t, alice, domain.NewEvent{Action: "login"})
	checkOneWinner(t, racedTransition(t, fx.events, e.ID.String()), -1)
	_, hist, err := fx.events.Get(fx.ctx, alice, e.ID.String())
	if err != nil || len(hist) != 2 {
		t.Fatalf("history = %+v, %v; want exactly one recorded transition", hist, err)
	}
}

// With every racer forced to read PENDING first, all but one must lose
// the compare-and-set: the check in app is not what protects the status.
func TestTransitionConcurrentAllReadFirst(t *testing.T) {
	g := &gatedStore{Store: memory.New()}
	clk := testenv.NewClock(start)
	events := app.NewEvents(g, clk, domain.DefaultLimits())
	e, _, err := events.Record(context.Background(), alice, domain.NewEvent{Action: "login"})
	if err != nil {
		t.Fatal(err)
	}
	g.arrived.Add(racers)
	checkOneWinner(t, racedTransition(t, events, e.ID.String()), racers-1)
	hist, err := g.History(context.Background(), e.ID)
	if err != nil || len(hist) != 2 {
		t.Fatalf("history = %+v, %v; want exactly one recorded transition", hist, err)
	}
}
