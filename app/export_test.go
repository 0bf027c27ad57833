package app_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

// export runs Export and returns the events handed over.
func (fx *fixture) export(t *testing.T, p domain.Principal, q domain.Query) ([]domain.Event, error) {
	t.Helper()
	var got []domain.Event
	n, err := fx.events.Export(fx.ctx, p, q, func(e domain.Event) error {
		got = append(got, e)
		return nil
	})
	if n != len(got) {
		t.Fatalf("Export returned n = %d, handed over %d", n, len(got))
	}
	return got, err
}

// ids returns the events' ids in order.
func ids(es []domain.Event) []domain.ID {
	out := make([]domain.ID, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// TestExportPages exports more events than one store page: all of them,
// once each, oldest first by default, newest first when asked.
func TestExportPages(t *testing.T) {
	fx := newFixture(t)
	fx.clock.SetStep(time.Microsecond)
	const total = 2*app.ExportPageSize + 500
	var want []domain.ID
	for i := range total {
		p := alice
		if i%5 == 0 {
			p = bob
		}
		want = append(want, fx.record(t, p, domain.NewEvent{Action: "login"}).ID)
	}
	got, err := fx.export(t, admin, domain.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), want) {
		t.Fatalf("ascending export: %d events, want the %d recorded in order", len(got), len(want))
	}
	got, err = fx.export(t, admin, domain.Query{Order: "desc"})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(want)
	if !slices.Equal(ids(got), want) {
		t.Fatalf("descending export: %d events, want the %d recorded, newest first", len(got), len(want))
	}
	got, err = fx.export(t, alice, domain.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != total-total/5 {
		t.Fatalf("alice's export has %d events, want %d", len(got), total-total/5)
	}
	for _, e := range got {
		if e.UserID != alice.UserID {
			t.Fatalf("alice's export holds %+v", e)
		}
	}
}

func TestExportRights(t *testing.T) {
	fx := newFixture(t)
	fx.record(t, alice, domain.NewEvent{Action: "login"})
	fx.record(t, bob, domain.NewEvent{Action: "login"})
	fx.clock.Advance(time.Second)
	tests := []struct {
		name string
		p    domain.Principal
		q    domain.Query
		want error
	}{
		{"another user", alice, domain.Query{UserID: "2"}, domain.ErrForbidden},
		{"no read scope", writer, domain.Query{}, domain.ErrForbidden},
		{"bad filter", alice, domain.Query{Status: "lost"}, domain.ErrInvalid},
		{"limit", alice, domain.Query{Limit: "10"}, domain.ErrInvalid},
		{"cursor", alice, domain.Query{Cursor: "x"}, domain.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fx.export(t, tt.p, tt.q)
			wantErr(t, err, tt.want)
			if len(got) != 0 {
				t.Fatalf("handed over %d events before refusing", len(got))
			}
		})
	}
	got, err := fx.export(t, reader, domain.Query{UserID: "1"})
	if err != nil || len(got) != 1 || got[0].UserID != 1 {
		t.Fatalf("reader's own export = %v, %v", got, err)
	}
}

// TestExportBounded: events recorded while an export runs are not in it,
// however many there are.
func TestExportBounded(t *testing.T) {
	fx := newFixture(t)
	fx.clock.SetStep(time.Microsecond)
	for range 3 {
		fx.record(t, alice, domain.NewEvent{Action: "login"})
	}
	n, err := fx.events.Export(fx.ctx, alice, domain.Query{}, func(domain.Event) error {
		fx.record(t, alice, domain.NewEvent{Action: "logout"})
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("Export = %d, %v; want the 3 events there when it began", n, err)
	}
	// An earlier to stays; a later one is cut to the start.
	got, err := fx.export(t, alice, domain.Query{To: start.Add(2 * time.Microsecond).Format(time.RFC3339Nano)})
	if err != nil || len(got) != 2 {
		t.Fatalf("export before the third event = %d events, %v; want 2", len(got), err)
	}
}

// failingList fails every List call after the first ok ones.
type failingList struct {
	*memory.Store
	ok int
}

var errBroken = errors.New("disk on fire")

func (f *failingList) List(ctx context.Context, fl domain.Filter) (domain.Page, error) {
	if f.ok == 0 {
		return domain.Page{}, errBroken
	}
	f.ok--
	return f.Store.List(ctx, fl)
}

func TestExportStops(t *testing.T) {
	fx := newFixture(t)
	for range app.ExportPageSize + 10 {
		fx.record(t, alice, domain.NewEvent{Action: "login"})
	}
	fx.clock.Advance(time.Second)
	events := app.NewEvents(&failingList{Store: fx.store, ok: 1}, fx.clock, domain.DefaultLimits())
	n, err := events.Export(fx.ctx, alice, domain.Query{}, func(domain.Event) error { return nil })
	if !errors.Is(err, errBroken) || n != app.ExportPageSize {
		t.Fatalf("Export over a store failing on its second page = %d, %v; want %d, %v", n, err, app.ExportPageSize, errBroken)
	}
	stop := errors.New("client gone")
	n, err = fx.events.Export(fx.ctx, alice, domain.Query{}, func(domain.Event) error { return stop })
	if err != stop || n != 0 {
		t.Fatalf("Export with each failing = %d, %v; want 0, %v", n, err, stop)
	}
}
