package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

// importer is who activityd import acts as.
var importer = domain.Principal{Name: "import:activity-logger", Scopes: []domain.Scope{domain.ScopeAdmin}}

// TestImport: imported events keep status and times, a re-run stores
// nothing twice, an id holding another event is reported as taken, the
// cache forgets imported users, and the windows imported events fall in
// are recounted (the still-open one left to the job).
func TestImport(t *testing.T) {
	fx := newCountsFixture(t, app.CountsConfig{})
	fx.clock.Set(hr(13)) // windows [0,4) [4,8) [8,12) closed; [12,16) open
	events := app.NewEvents(fx.store, fx.clock, domain.DefaultLimits())
	im := app.NewImports(fx.store, events, fx.counts, fx.clock)
	ctx := context.Background()

	past := func(n int64, user, action, status string, at time.Time) domain.Past {
		return domain.Past{ID: domain.LegacyID{System: domain.ActivityLogger, N: n}.ID(), UserID: user,
			Action: action, Status: status, RecordedAt: at, Metadata: []byte(`{"n":1}`)}
	}
	rows := []domain.Past{
		past(1, "6", "LOGIN", "DONE", hr(0.5)),
		past(2, "6", "upload_file", "IN_PROGRESS", hr(1)),
		past(3, "7", "logout", "", hr(9)),
		past(4, "7", "login", "PENDING", hr(12.5)), // the open window
	}
	for _, r := range rows {
		if err := im.Check(r); err != nil {
			t.Fatalf("Check(%+v): %v", r, err)
		}
	}
	bad := past(5, "0", "dance", "CANCELLED", hr(1))
	wantFields(t, im.Check(bad), "user_id", "action", "status")
	if _, err := im.Store(ctx, alice, rows); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("a non-admin imported: %v", err)
	}

	out, err := im.Store(ctx, importer, append(rows, bad))
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out[:len(rows)] {
		if o.Outcome != app.Imported || o.Err != nil {
			t.Errorf("outcome %d = %+v, want Imported", i, o)
		}
	}
	if r := out[len(rows)]; r.Outcome != app.Refused || r.Err == nil {
		t.Errorf("bad row: %+v, want Refused", r)
	}
	if _, err := fx.store.Get(ctx, bad.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("the refused row was stored: %v", err)
	}
	es := make([]domain.ID, len(rows))
	for i, r := range rows {
		es[i] = r.ID
	}
	got, err := fx.store.Get(ctx, es[0])
	if err != nil || got.Status != domain.StatusDone || !got.RecordedAt.Equal(hr(0.5)) || got.Action != "login" {
		t.Fatalf("stored %+v, %v", got, err)
	}
	hist, err := fx.store.History(ctx, es[0])
	if err != nil || len(hist) != 3 || hist[2].To != domain.StatusDone || hist[2].By != "import:activity-logger" {
		t.Fatalf("history %+v, %v", hist, err)
	}

	done, open, err := im.Recount(ctx, importer)
	if err != nil {
		t.Fatal(err)
	}
	want := []domain.Window{{Start: hr(0), End: hr(4)}, {Start: hr(8), End: hr(12)}}
	if len(done) != 2 || done[0] != want[0] || done[1] != want[1] {
		t.Fatalf("recounted %v, want %v", done, want)
	}
	if open != 1 {
		t.Errorf("open windows = %d, want 1", open)
	}
	wantTotals(t, fx.totals(t), map[string]int64{"u6@0h": 2, "u7@8h": 1})

	// A re-run: nothing stored twice, the same windows recounted, the same totals.
	im2 := app.NewImports(fx.store, events, fx.counts, fx.clock)
	out, err = im2.Store(ctx, importer, rows)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o.Outcome != app.AlreadyPresent {
			t.Errorf("re-run outcome %d = %+v, want AlreadyPresent", i, o)
		}
	}
	if _, _, err := im2.Recount(ctx, importer); err != nil {
		t.Fatal(err)
	}
	wantTotals(t, fx.totals(t), map[string]int64{"u6@0h": 2, "u7@8h": 1})

	// An id that holds another event is taken, not overwritten.
	other := rows[1]
	other.UserID = "99"
	out, err = im2.Store(ctx, importer, []domain.Past{other})
	if err != nil || out[0].Outcome != app.Taken {
		t.Fatalf("Store(other event under a used id) = %+v, %v; want Taken", out, err)
	}
	if got, _ := fx.store.Get(ctx, other.ID); got.UserID != 6 {
		t.Fatalf("the used id now holds user %d", got.UserID)
	}
}

// TestRecordNumbered: an event recorded on the activity-logger surface
// gets the next log number as its id, above the numbers an import
// reserved, skipping a number already taken; an Idempotency-Key keeps its
// derived id.
func TestRecordNumbered(t *testing.T) {
	fx := newFixture(t)
	events := app.NewEvents(fx.store, fx.clock, domain.DefaultLimits(), app.WithLegacyIDs(fx.store))
	in := domain.NewEvent{Action: "login", Legacy: domain.ActivityLogger}
	e, created, err := events.Record(fx.ctx, alice, in)
	if err != nil || !created {
		t.Fatal(created, err)
	}
	if l, ok := e.ID.Legacy(); !ok || l != (domain.LegacyID{System: domain.ActivityLogger, N: 1}) {
		t.Fatalf("first log id %s = %v %v", e.ID, l, ok)
	}

	// An import brought in 2..10 without reserving 11; a log holds 11.
	if err := fx.store.ReserveLegacyIDs(fx.ctx, 9); err != nil {
		t.Fatal(err)
	}
	taken := e
	taken.ID = domain.LegacyID{System: domain.ActivityLogger, N: 10}.ID()
	if _, _, err := fx.store.Create(fx.ctx, taken, "import"); err != nil {
		t.Fatal(err)
	}
	e, _, err = events.Record(fx.ctx, alice, in)
	if l, _ := e.ID.Legacy(); err != nil || l.N != 11 {
		t.Fatalf("after reserving 9 with 10 taken: log %v, %v; want 11", l, err)
	}

	keyed := in
	keyed.IdempotencyKey = "k1"
	e, _, err = events.Record(fx.ctx, alice, keyed)
	if err != nil || e.ID != domain.KeyID(alice.UserID, "k1") {
		t.Fatalf("keyed: %s, %v", e.ID, err)
	}

	// Without WithLegacyIDs the surface gets UUIDs.
	e = fx.record(t, alice, in)
	if _, ok := e.ID.Legacy(); ok {
		t.Fatalf("numbered without a numbering store: %s", e.ID)
	}
}

// TestImportPrivacy: imported history goes through METADATA_RULES too.
func TestImportPrivacy(t *testing.T) {
	fx := newCountsFixture(t, app.CountsConfig{})
	fx.clock.Set(hr(13))
	rules, err := domain.ParsePrivacy("ip:mask-ip,password:drop", nil)
	if err != nil {
		t.Fatal(err)
	}
	events := app.NewEvents(fx.store, fx.clock, domain.DefaultLimits(), app.WithPrivacy(rules))
	im := app.NewImports(fx.store, events, fx.counts, fx.clock)
	row := domain.Past{ID: domain.LegacyID{System: domain.ActivityLogger, N: 9}.ID(), UserID: "6", Action: "login",
		RecordedAt: hr(1), Metadata: []byte(`{"ip":"198.51.100.23","password":"p","keep":"k"}`)}
	out, err := im.Store(context.Background(), importer, []domain.Past{row})
	if err != nil || len(out) != 1 || out[0].Outcome != app.Imported {
		t.Fatalf("Store = %+v, %v", out, err)
	}
	e, err := fx.store.Get(context.Background(), row.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Metadata) != `{"ip":"198.51.100.0","keep":"k"}` {
		t.Errorf("imported metadata = %s", e.Metadata)
	}
}
