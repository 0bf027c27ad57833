package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

func TestRecordDefaultsToPrincipalsUser(t *testing.T) {
	fx := newFixture(t)
	e, created, err := fx.events.Record(fx.ctx, alice, domain.NewEvent{Action: "LOGIN", Metadata: json.RawMessage(`{"b":1,"a":2}`)})
	if err != nil || !created {
		t.Fatalf("Record = %v, %v", created, err)
	}
	if e.UserID != alice.UserID || e.Action != "login" || e.Status != domain.StatusPending || string(e.Metadata) != `{"a":2,"b":1}` {
		t.Errorf("event = %+v", e)
	}
	want := domain.Normalize(start)
	if !e.RecordedAt.Equal(want) || !e.OccurredAt.Equal(want) || !e.UpdatedAt.Equal(want) {
		t.Errorf("times = %v/%v/%v, want the clock's %v", e.RecordedAt, e.OccurredAt, e.UpdatedAt, want)
	}
	got, hist, err := fx.events.Get(fx.ctx, alice, e.ID.String())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != e.ID || len(hist) != 1 || hist[0].From != "" || hist[0].To != domain.StatusPending ||
		hist[0].By != alice.Name || !hist[0].At.Equal(want) {
		t.Errorf("stored %+v with history %+v", got, hist)
	}
	if fx.events.Limits().MaxClockSkew != 5*time.Minute {
		t.Error("Limits() does not return the limits given")
	}
}

func TestRecordAuthorisation(t *testing.T) {
	tests := []struct {
		name     string
		p        domain.Principal
		in       domain.NewEvent
		wantUser int64
		wantErr  error
		fields   []string
	}{
		{"own user explicit", alice, domain.NewEvent{UserID: 1, Action: "login"}, 1, nil, nil},
		{"admin for a user", admin, domain.NewEvent{UserID: 7, Action: "login"}, 7, nil, nil},
		{"admin bound to a user defaults to it", domain.Principal{Name: "jwt:9", UserID: 9, Scopes: []domain.Scope{domain.ScopeAdmin}}, domain.NewEvent{Action: "login"}, 9, nil, nil},
		{"admin without user", admin, domain.NewEvent{Action: "login"}, 0, domain.ErrInvalid, []string{"user_id"}},
		{"other user", alice, domain.NewEvent{UserID: 2, Action: "login"}, 0, domain.ErrForbidden, nil},
		{"read-only scope", reader, domain.NewEvent{Action: "login"}, 0, domain.ErrForbidden, nil},
		{"read-only scope, invalid input", reader, domain.NewEvent{Action: "!!"}, 0, domain.ErrForbidden, nil},
		{"no scope", domain.Principal{Name: "x", UserID: 1}, domain.NewEvent{Action: "login"}, 0, domain.ErrForbidden, nil},
		{"invalid input", alice, domain.NewEvent{UserID: -1, Action: "jump", OccurredAt: "soon"}, 0, domain.ErrInvalid, []string{"user_id", "action", "occurred_at"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			e, created, err := fx.events.Record(fx.ctx, tt.p, tt.in)
			if tt.wantErr == nil {
				if err != nil || !created || e.UserID != tt.wantUser {
					t.Fatalf("Record = %+v, %v, %v; want user %d", e, created, err, tt.wantUser)
				}
				return
			}
			wantErr(t, err, tt.wantErr)
			if tt.fields != nil {
				wantFields(t, err, tt.fields...)
			}
			if created || !e.ID.IsZero() {
				t.Errorf("failed Record returned %+v, created %v", e, created)
			}
			if n := fx.count(t); n != 0 {
				t.Errorf("a rejected record left %d events", n)
			}
		})
	}
}

func TestRecordIdempotentClientID(t *testing.T) {
	const id = "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70"
	orig := domain.NewEvent{ID: id, UserID: 1, Action: "upload_file", OccurredAt: "2025-10-10T18:00:00Z", Metadata: json.RawMessage(`{"a":1,"b":[1,2]}`)}
	with := func(f func(*domain.NewEvent)) domain.NewEvent {
		in := orig
		f(&in)
		return in
	}
	tests := []struct {
		name     string
		p        domain.Principal
		retry    domain.NewEvent
		conflict bool
	}{
		{"identical", alice, orig, false},
		{"upper-case id, other action case, reordered metadata", alice, with(func(in *domain.NewEvent) {
			in.ID = strings.ToUpper(id)
			in.Action = "UPLOAD_FILE"
			in.Metadata = json.RawMessage(` { "b" : [1, 2], "a" : 1 } `)
		}), false},
		{"without occurred_at", alice, with(func(in *domain.NewEvent) { in.OccurredAt = "" }), false},
		{"without user (defaults to the same)", alice, with(func(in *domain.NewEvent) { in.UserID = 0 }), false},
		{"same instant, other offset", alice, with(func(in *domain.NewEvent) { in.OccurredAt = "2025-10-10T20:00:00+02:00" }), false},
		{"by admin for the same user", admin, orig, false},
		{"other action", alice, with(func(in *domain.NewEvent) { in.Action = "viewed" }), true},
		{"other metadata", alice, with(func(in *domain.NewEvent) { in.Metadata = json.RawMessage(`{"a":1,"b":[2,1]}`) }), true},
		{"metadata dropped", alice, with(func(in *domain.NewEvent) { in.Metadata = nil }), true},
		{"other user", admin, with(func(in *domain.NewEvent) { in.UserID = 2 }), true},
		{"other user's own credential", bob, with(func(in *domain.NewEvent) { in.UserID = 0 }), true},
		{"other occurred_at", alice, with(func(in *domain.NewEvent) { in.OccurredAt = "2025-10-10T18:00:00.001Z" }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			first := fx.record(t, alice, orig)
			if first.ID.String() != id {
				t.Fatalf("client id not kept: %s", first.ID)
			}
			fx.clock.Advance(time.Minute)
			got, created, err := fx.events.Record(fx.ctx, tt.p, tt.retry)
			if tt.conflict {
				wantErr(t, err, domain.ErrIDConflict)
				if created || !got.ID.IsZero() {
					t.Errorf("a conflict returned %+v, created %v", got, created)
				}
			} else {
				if err != nil || created {
					t.Fatalf("retry = created %v, %v; want the stored event", created, err)
				}
				if got.ID != first.ID || !got.RecordedAt.Equal(first.RecordedAt) || !got.OccurredAt.Equal(first.OccurredAt) ||
					string(got.Metadata) != string(first.Metadata) || got.UserID != first.UserID {
					t.Errorf("retry returned %+v, want the stored %+v", got, first)
				}
			}
			if n := fx.count(t); n != 1 {
				t.Errorf("store holds %d events, want 1", n)
			}
		})
	}
}

// A first request without occurred_at takes the clock's time; a retry
// later, also without it, is the same event and does not conflict.
func TestRecordRetryWithoutOccurredAt(t *testing.T) {
	fx := newFixture(t)
	in := domain.NewEvent{ID: "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f71", Action: "login"}
	first := fx.record(t, alice, in)
	fx.clock.Advance(time.Hour)
	got, created, err := fx.events.Record(fx.ctx, alice, in)
	if err != nil || created || got.ID != first.ID || !got.OccurredAt.Equal(first.OccurredAt) {
		t.Fatalf("retry = %+v, %v, %v", got, created, err)
	}
	// Naming the occurred_at the first request defaulted to also matches.
	in.OccurredAt = domain.FormatTime(first.OccurredAt)
	if _, created, err := fx.events.Record(fx.ctx, alice, in); err != nil || created {
		t.Fatalf("retry with the defaulted occurred_at = %v, %v", created, err)
	}
}

func TestRecordIdempotencyKey(t *testing.T) {
	fx := newFixture(t)
	in := domain.NewEvent{Action: "created", Metadata: json.RawMessage(`{"order":17}`)}

	first, created, err := fx.events.Record(fx.ctx, alice, keyed(in, "order-17"))
	if err != nil || !created {
		t.Fatalf("first = %v, %v", created, err)
	}
	if first.ID != domain.KeyID(alice.UserID, "order-17") {
		t.Errorf("id %s is not derived from the key", first.ID)
	}
	fx.clock.Advance(time.Second)
	again, created, err := fx.events.Record(fx.ctx, alice, keyed(in, "order-17"))
	if err != nil || created || again.ID != first.ID || !again.RecordedAt.Equal(first.RecordedAt) {
		t.Fatalf("same key = %+v, %v, %v; want the first event", again, created, err)
	}

	// The same key for another user is another event.
	other, created, err := fx.events.Record(fx.ctx, bob, keyed(in, "order-17"))
	if err != nil || !created || other.ID == first.ID || other.UserID != bob.UserID {
		t.Fatalf("bob, same key = %+v, %v, %v; want a new event", other, created, err)
	}
	// ... also when an admin records for two users with one key.
	a1, c1, err1 := fx.events.Record(fx.ctx, admin, keyed(domain.NewEvent{UserID: 10, Action: "login"}, "k"))
	a2, c2, err2 := fx.events.Record(fx.ctx, admin, keyed(domain.NewEvent{UserID: 11, Action: "login"}, "k"))
	if err1 != nil || err2 != nil || !c1 || !c2 || a1.ID == a2.ID {
		t.Fatalf("admin, one key, two users: %s %v %v / %s %v %v", a1.ID, c1, err1, a2.ID, c2, err2)
	}

	// The same key with other content conflicts.
	_, _, err = fx.events.Record(fx.ctx, alice, keyed(domain.NewEvent{Action: "deleted", Metadata: in.Metadata}, "order-17"))
	wantErr(t, err, domain.ErrIDConflict)

	// A client id wins over the key.
	withID := domain.NewEvent{ID: "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f72", Action: "login"}
	e, _, err := fx.events.Record(fx.ctx, alice, keyed(withID, "order-17"))
	if err != nil || e.ID.String() != withID.ID {
		t.Fatalf("id and key: %s, %v; want the client id", e.ID, err)
	}
	if n := fx.count(t); n != 5 {
		t.Errorf("store holds %d events, want 5", n)
	}
}

func TestRecordIdempotencyKeyLength(t *testing.T) {
	fx := newFixture(t)
	in := domain.NewEvent{Action: "login"}
	if _, created, err := fx.events.Record(fx.ctx, alice, keyed(in, strings.Repeat("k", 255))); err != nil || !created {
		t.Fatalf("255-character key: %v, %v", created, err)
	}
	_, _, err := fx.events.Record(fx.ctx, alice, keyed(in, strings.Repeat("k", 256)))
	wantFields(t, err, "Idempotency-Key")
	if n := fx.count(t); n != 1 {
		t.Errorf("store holds %d events, want 1", n)
	}
}

func TestRecordBatchSize(t *testing.T) {
	fx := newFixture(t)
	for _, ins := range [][]domain.NewEvent{nil, {}} {
		items, err := fx.events.RecordBatch(fx.ctx, alice, ins)
		wantFields(t, err, "events")
		if items != nil {
			t.Errorf("items %v for an empty batch", items)
		}
	}
	big := make([]domain.NewEvent, app.MaxBatch+1)
	for i := range big {
		big[i] = domain.NewEvent{Action: "viewed"}
	}
	_, err := fx.events.RecordBatch(fx.ctx, alice, big)
	wantFields(t, err, "events")
	if n := fx.count(t); n != 0 {
		t.Fatalf("an oversized batch stored %d events", n)
	}

	items, err := fx.events.RecordBatch(fx.ctx, alice, big[:app.MaxBatch])
	if err != nil || len(items) != app.MaxBatch {
		t.Fatalf("batch of %d: %d items, %v", app.MaxBatch, len(items), err)
	}
	ids := map[domain.ID]bool{}
	for i, it := range items {
		if it.Err != nil || !it.Created || ids[it.Event.ID] {
			t.Fatalf("item %d = %+v", i, it)
		}
		ids[it.Event.ID] = true
	}
	if n := fx.count(t); n != app.MaxBatch {
		t.Errorf("store holds %d events, want %d", n, app.MaxBatch)
	}
}

func TestRecordBatchItemsSucceedOrFailAlone(t *testing.T) {
	fx := newFixture(t)
	const x = "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70"
	const y = "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f71"
	existing := fx.record(t, alice, domain.NewEvent{ID: x, Action: "login", Metadata: json.RawMessage(`{"k":1}`)})
	fx.clock.Advance(time.Minute)

	ins := []domain.NewEvent{
		0: {Action: "viewed"},                                                // created
		1: {Action: "bad action", OccurredAt: "nope"},                        // invalid, two fields
		2: {UserID: 2, Action: "login"},                                      // another user: forbidden
		3: {ID: x, Action: "LOGIN", Metadata: json.RawMessage(`{ "k": 1 }`)}, // retry of existing
		4: {ID: x, Action: "logout"},                                         // conflicts with existing
		5: {ID: y, Action: "viewed", OccurredAt: "2025-10-10T18:00:00Z"},     // created
		6: {ID: y, Action: "viewed"},                                         // duplicate of 5 in the batch
		7: {ID: y, Action: "viewed", Metadata: json.RawMessage(`{"a":1}`)},   // conflicts with 5
		8: {ID: y, Action: "viewed", OccurredAt: "2025-10-10T18:00:01Z"},     // conflicts with 5
		9: {ID: "00000000-0000-0000-0000-000000000000", Action: "login"},     // invalid id
	}
	items, err := fx.events.RecordBatch(fx.ctx, alice, ins)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != len(ins) {
		t.Fatalf("%d items for %d events", len(items), len(ins))
	}
	created := func(i int) {
		t.Helper()
		if it := items[i]; it.Err != nil || !it.Created || it.Event.ID.IsZero() || it.Event.UserID != alice.UserID {
			t.Errorf("item %d = %+v, want created", i, it)
		}
	}
	existingItem := func(i int, want domain.Event) {
		t.Helper()
		if it := items[i]; it.Err != nil || it.Created || it.Event.ID != want.ID || !it.Event.RecordedAt.Equal(want.RecordedAt) {
			t.Errorf("item %d = %+v, want the stored %s", i, it, want.ID)
		}
	}
	failed := func(i int, target error, fields ...string) {
		t.Helper()
		it := items[i]
		if !errors.Is(it.Err, target) || it.Created || !it.Event.ID.IsZero() {
			t.Errorf("item %d = %+v, want %v", i, it, target)
			return
		}
		if fields != nil {
			wantFields(t, it.Err, fields...)
		}
	}
	created(0)
	failed(1, domain.ErrInvalid, "events[1].action", "events[1].occurred_at")
	failed(2, domain.ErrForbidden)
	existingItem(3, existing)
	failed(4, domain.ErrIDConflict)
	created(5)
	if got := items[5].Event; got.ID.String() != y || !got.OccurredAt.Equal(time.Date(2025, 10, 10, 18, 0, 0, 0, time.UTC)) {
		t.Errorf("item 5 = %+v", got)
	}
	existingItem(6, items[5].Event)
	failed(7, domain.ErrIDConflict)
	failed(8, domain.ErrIDConflict)
	failed(9, domain.ErrInvalid, "events[9].id")

	if n := fx.count(t); n != 3 {
		t.Errorf("store holds %d events, want 3 (existing, item 0, item 5)", n)
	}
	stored, _, err := fx.events.Get(fx.ctx, alice, x)
	if err != nil || stored.Action != "login" {
		t.Errorf("existing event changed: %+v, %v", stored, err)
	}
}

func TestRecordBatchWithoutWriteScope(t *testing.T) {
	fx := newFixture(t)
	// A credential that may not write is refused for the whole batch, before
	// any item is looked at: it learns nothing about validation.
	items, err := fx.events.RecordBatch(fx.ctx, reader, []domain.NewEvent{{Action: "login"}, {Action: "nope nope"}})
	if !errors.Is(err, domain.ErrForbidden) || items != nil {
		t.Fatalf("RecordBatch = %v, %v; want nil, ErrForbidden", items, err)
	}
	if n := fx.count(t); n != 0 {
		t.Errorf("store holds %d events", n)
	}
}

func TestRecordBatchAdmin(t *testing.T) {
	fx := newFixture(t)
	items, err := fx.events.RecordBatch(fx.ctx, admin, []domain.NewEvent{
		{UserID: 3, Action: "login"},
		{Action: "login"},
		{UserID: 4, Action: "logout"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if items[0].Err != nil || items[0].Event.UserID != 3 || items[2].Err != nil || items[2].Event.UserID != 4 {
		t.Errorf("items = %+v", items)
	}
	wantFields(t, items[1].Err, "events[1].user_id")
	h, err := fx.store.History(fx.ctx, items[0].Event.ID)
	if err != nil || len(h) != 1 || h[0].By != admin.Name {
		t.Errorf("history = %+v, %v; want created by %s", h, err, admin.Name)
	}
}

func ExampleEvents_RecordBatch() {
	events := app.NewEvents(memory.New(), ports.ClockFunc(time.Now), domain.DefaultLimits())
	items, _ := events.RecordBatch(context.Background(), alice, []domain.NewEvent{{Action: "login"}, {Action: "jump"}})
	for i, it := range items {
		if it.Err != nil {
			fmt.Println(i, it.Err)
		} else {
			fmt.Println(i, it.Event.Action, it.Created)
		}
	}
	// Output:
	// 0 login true
	// 1 invalid input: events[1].action: unknown action "jump"; accepted: created, deleted, login, logout, updated, upload_file, viewed
}

// jsonbStore gives stored metadata back the way PostgreSQL's jsonb spells
// it (here a fixed document), as a real store would on an idempotent retry.
type jsonbStore struct {
	*memory.Store
	spelt json.RawMessage
}

func (s *jsonbStore) Create(ctx context.Context, e domain.Event, by string) (domain.Event, bool, error) {
	st, created, err := s.Store.Create(ctx, e, by)
	if err == nil && !created {
		st.Metadata = s.spelt
	}
	return st, created, err
}

func (s *jsonbStore) CreateMany(ctx context.Context, es []domain.Event, by string) ([]ports.Created, error) {
	out, err := s.Store.CreateMany(ctx, es, by)
	for i := range out {
		if !out[i].Created {
			out[i].Event.Metadata = s.spelt
		}
	}
	return out, err
}

// A retry is the same event although the store spells its numbers anew
// (1e-7 comes back from PostgreSQL as 0.0000001).
func TestRecordRetryMatchesRespeltNumbers(t *testing.T) {
	st := &jsonbStore{Store: memory.New(), spelt: json.RawMessage(`{"n": 100, "ratio": 0.0000001, "xs": [1.50, 0]}`)}
	events := app.NewEvents(st, ports.ClockFunc(func() time.Time { return start }), domain.DefaultLimits())
	ctx := context.Background()
	in := domain.NewEvent{Action: "viewed", Metadata: json.RawMessage(`{"ratio":1e-7,"n":1E+2,"xs":[1.5,-0]}`)}

	first, created, err := events.Record(ctx, alice, keyed(in, "key-1"))
	if err != nil || !created {
		t.Fatal(created, err)
	}
	again, created, err := events.Record(ctx, alice, keyed(in, "key-1"))
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("retry = %s, %v, %v; want the stored event", again.ID, created, err)
	}
	in.ID = first.ID.String()
	items, err := events.RecordBatch(ctx, alice, []domain.NewEvent{in})
	if err != nil || items[0].Err != nil || items[0].Created {
		t.Fatalf("batch retry = %+v, %v", items, err)
	}
	in.Metadata = json.RawMessage(`{"ratio":1e-6,"n":1E+2,"xs":[1.5,-0]}`)
	_, _, err = events.Record(ctx, alice, in)
	wantErr(t, err, domain.ErrIDConflict)
}
