package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	memcache "github.com/activityd/activityd/adapters/cache/memory"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

// TestCountsOpenWindow: the listing and a run both say which window is
// open, the one whose events a newcomer has just recorded.
func TestCountsOpenWindow(t *testing.T) {
	ctx := context.Background()
	fx := newCountsFixture(t, app.CountsConfig{})
	fx.clock.Set(hr(9.5))
	l, err := fx.counts.List(ctx, alice, domain.CountQuery{}, app.CountListOptions{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := (domain.Window{Start: hr(8), End: hr(12)}); l.Page.Open != want {
		t.Errorf("List: open window %v, want %v", l.Page.Open, want)
	}
	run, err := fx.counts.Trigger(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if want := (domain.Window{Start: hr(8), End: hr(12)}); run.Open != want {
		t.Errorf("Trigger: open window %v, want %v", run.Open, want)
	}
	if w, ok := fx.counts.OpenWindow(hr(12)); !ok || w != (domain.Window{Start: hr(12), End: hr(16)}) {
		t.Errorf("OpenWindow on a tick = %v, %v; want [12h, 16h)", w, ok)
	}

	never := newCountsFixture(t, app.CountsConfig{Schedule: neverSchedule{}})
	l, err = never.counts.List(ctx, alice, domain.CountQuery{}, app.CountListOptions{}, "")
	if err != nil || l.Page.Open.Valid() {
		t.Errorf("without a schedule: open %v, %v; want none", l.Page.Open, err)
	}
	run, err = never.counts.Trigger(ctx, admin)
	if err != nil || run.Open.Valid() {
		t.Errorf("Trigger without a schedule: open %v, %v; want none", run.Open, err)
	}
}

// TestCountsProvisional: the open window's counts so far, counted from
// the events at the read, under the listing's ownership rules and filter,
// after the stored ones, never stored and never cached.
func TestCountsProvisional(t *testing.T) {
	ctx := context.Background()
	cache := memcache.New(memcache.Options{})
	fx := newCountsFixture(t, app.CountsConfig{Cache: app.CacheConfig{Cache: cache, TTL: time.Minute}})
	fx.recordAt(t, 1, "login", hr(1))
	fx.recordAt(t, 2, "viewed", hr(2))
	if _, err := fx.counts.Compute(ctx, domain.Window{Start: hr(0), End: hr(4)}); err != nil {
		t.Fatal(err)
	}
	// The open window [4h, 8h): read at 6h.
	fx.recordAt(t, 1, "login", hr(4))
	fx.recordAt(t, 1, "created", hr(5))
	fx.recordAt(t, 2, "login", hr(5.5))
	fx.recordAt(t, 3, "login", hr(6)) // at the read: not yet in [start, now)
	fx.clock.Set(hr(6))
	stored := fx.totals(t)

	type item struct {
		user  int64
		total int64
		start time.Time
		end   time.Time
	}
	read := func(p domain.Principal, q domain.CountQuery, provisional bool) (storedUsers []int64, prov []item, res app.CacheResult, err error) {
		t.Helper()
		l, err := fx.counts.List(ctx, p, q, app.CountListOptions{Provisional: provisional}, "v1counts")
		if err != nil {
			return nil, nil, "", err
		}
		if l.Body != nil {
			return nil, nil, l.Cache, nil
		}
		for _, c := range l.Page.Counts {
			storedUsers = append(storedUsers, c.UserID)
		}
		for _, c := range l.Page.Provisional {
			prov = append(prov, item{c.UserID, c.Total, c.Start, c.End})
		}
		l.Keep([]byte("rendered"))
		return storedUsers, prov, l.Cache, nil
	}
	it := func(user, total int64) item { return item{user, total, hr(4), hr(6)} }

	tests := []struct {
		name       string
		p          domain.Principal
		q          domain.CountQuery
		wantStored string
		wantProv   []item
	}{
		{"admin sees every user, newest first", admin, domain.CountQuery{}, "[2 1]", []item{it(2, 1), it(1, 2)}},
		{"admin, ascending", admin, domain.CountQuery{Order: "asc"}, "[1 2]", []item{it(1, 2), it(2, 1)}},
		{"admin names a user", admin, domain.CountQuery{UserID: "2"}, "[2]", []item{it(2, 1)}},
		{"a user sees its own", alice, domain.CountQuery{}, "[1]", []item{it(1, 2)}},
		{"a reader names itself", reader, domain.CountQuery{UserID: "1"}, "[1]", []item{it(1, 2)}},
		{"from after the open window's start", admin, domain.CountQuery{From: hr(5).Format(time.RFC3339)}, "[]", nil},
		{"to at the open window's start", admin, domain.CountQuery{To: hr(4).Format(time.RFC3339)}, "[2 1]", nil},
		{"from at the open window's start", admin, domain.CountQuery{From: hr(4).Format(time.RFC3339)}, "[]", []item{it(2, 1), it(1, 2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 2 { // a second read is not a cache hit
				users, prov, res, err := read(tt.p, tt.q, true)
				if err != nil {
					t.Fatal(err)
				}
				if users == nil {
					users = []int64{}
				}
				if fmt.Sprint(users) != tt.wantStored || fmt.Sprint(prov) != fmt.Sprint(tt.wantProv) || res != app.CacheBypass {
					t.Fatalf("stored %v, provisional %v, %s; want %s, %v, BYPASS", users, prov, res, tt.wantStored, tt.wantProv)
				}
			}
		})
	}

	t.Run("another user is forbidden", func(t *testing.T) {
		_, _, _, err := read(alice, domain.CountQuery{UserID: "2"}, true)
		wantErr(t, err, domain.ErrForbidden)
	})
	t.Run("not on a later page", func(t *testing.T) {
		l, err := fx.counts.List(ctx, admin, domain.CountQuery{Limit: "1"}, app.CountListOptions{Provisional: true}, "")
		if err != nil || l.Page.Next == nil || len(l.Page.Provisional) != 2 {
			t.Fatalf("first page: %+v, %v", l.Page, err)
		}
		l, err = fx.counts.List(ctx, admin, domain.CountQuery{Limit: "1", Cursor: l.Page.Next.Encode()}, app.CountListOptions{Provisional: true}, "")
		if err != nil || len(l.Page.Counts) != 1 || len(l.Page.Provisional) != 0 {
			t.Fatalf("second page: %+v, %v", l.Page, err)
		}
	})
	t.Run("a newer event counts at once", func(t *testing.T) {
		fx.clock.Set(hr(6.5))
		_, prov, _, err := read(bob, domain.CountQuery{}, true)
		if err != nil || fmt.Sprint(prov) != fmt.Sprint([]item{{2, 1, hr(4), hr(6.5)}}) {
			t.Fatalf("bob at 6.5h: %v, %v", prov, err)
		}
		fx.recordAt(t, 2, "logout", hr(6.25))
		_, prov, _, err = read(bob, domain.CountQuery{}, true)
		if err != nil || fmt.Sprint(prov) != fmt.Sprint([]item{{2, 2, hr(4), hr(6.5)}}) {
			t.Fatalf("bob after another event: %v, %v", prov, err)
		}
	})
	if got := fx.totals(t); fmt.Sprint(got) != fmt.Sprint(stored) {
		t.Fatalf("provisional reads changed the stored counts: %v, was %v", got, stored)
	}
	t.Run("without provisional, cached and without live counts", func(t *testing.T) {
		_, prov, res, err := read(alice, domain.CountQuery{}, false)
		if err != nil || prov != nil || res != app.CacheMiss {
			t.Fatalf("%v, %s, %v", prov, res, err)
		}
		if _, _, res, _ := read(alice, domain.CountQuery{}, false); res != app.CacheHit {
			t.Fatalf("second read %s, want HIT", res)
		}
	})
	t.Run("the cached page is not served once the open window has closed", func(t *testing.T) {
		fx.clock.Set(hr(8.1))
		l, err := fx.counts.List(ctx, alice, domain.CountQuery{}, app.CountListOptions{}, "v1counts")
		if err != nil || l.Cache != app.CacheMiss || l.Page.Open != (domain.Window{Start: hr(8), End: hr(12)}) {
			t.Fatalf("after the window closed: %s, open %v, %v", l.Cache, l.Page.Open, err)
		}
	})
}

// TestCountsProvisionalFromWatermark: after a schedule change left the
// watermark inside the open window, the provisional counts start there,
// as the job will: nothing counted twice.
func TestCountsProvisionalFromWatermark(t *testing.T) {
	ctx := context.Background()
	fx := newCountsFixture(t, app.CountsConfig{})
	fx.recordAt(t, 1, "login", hr(4.5))
	fx.recordAt(t, 1, "login", hr(5.5))
	if _, err := fx.counts.Compute(ctx, domain.Window{Start: hr(3), End: hr(5)}); err != nil {
		t.Fatal(err)
	}
	fx.clock.Set(hr(6))
	l, err := fx.counts.List(ctx, alice, domain.CountQuery{}, app.CountListOptions{Provisional: true}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Page.Provisional) != 1 || l.Page.Provisional[0].Total != 1 || !l.Page.Provisional[0].Start.Equal(hr(5)) {
		t.Fatalf("provisional %+v, want one event from the watermark 5h", l.Page.Provisional)
	}
}

func TestParseProvisional(t *testing.T) {
	for in, want := range map[string]bool{"": false, "false": false, "true": true} {
		if got, err := app.ParseProvisional(in); err != nil || got != want {
			t.Errorf("ParseProvisional(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"1", "yes", "TRUE", "on", " true"} {
		_, err := app.ParseProvisional(in)
		wantFields(t, err, "provisional")
	}
}

func TestMe(t *testing.T) {
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		p    domain.Principal
		want app.Identity
	}{
		{domain.Principal{Name: "token:a", UserID: 7, Scopes: []domain.Scope{domain.ScopeRead}, ExpiresAt: exp, Kind: domain.KindToken},
			app.Identity{Name: "token:a", UserID: 7, Scopes: []domain.Scope{domain.ScopeRead}, ExpiresAt: exp, Kind: domain.KindToken}},
		{domain.Principal{Name: "jwt:ops", Scopes: []domain.Scope{domain.ScopeAdmin}, Kind: domain.KindJWT},
			app.Identity{Name: "jwt:ops", Scopes: []domain.Scope{domain.ScopeAdmin}, Admin: true, Kind: domain.KindJWT}},
		{domain.Principal{Name: "anonymous:192.0.2.1", Scopes: []domain.Scope{domain.ScopeWrite}, AnyUser: true},
			app.Identity{Name: "anonymous:192.0.2.1", Scopes: []domain.Scope{domain.ScopeWrite}, AnyUser: true, Kind: domain.KindAnonymous}},
		{domain.Principal{Name: "token:n", UserID: 1},
			app.Identity{Name: "token:n", UserID: 1, Scopes: []domain.Scope{}, Kind: domain.KindToken}},
	}
	for _, tt := range tests {
		if got := app.Me(tt.p); fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tt.want) || got.Scopes == nil {
			t.Errorf("Me(%+v) = %+v, want %+v", tt.p, got, tt.want)
		}
	}
}

func TestEventsActions(t *testing.T) {
	fx := newFixture(t)
	v, err := fx.events.Actions(reader)
	if err != nil || v.Any() || fmt.Sprint(v.Actions()) != fmt.Sprint(domain.DefaultVocabulary().Actions()) {
		t.Fatalf("Actions(reader) = %v, %v", v.Actions(), err)
	}
	_, err = fx.events.Actions(writer)
	wantErr(t, err, domain.ErrForbidden)
	anyEvents := app.NewEvents(fx.store, fx.clock, domain.Limits{Actions: domain.AnyAction()})
	if v, err := anyEvents.Actions(admin); err != nil || !v.Any() || v.Actions() != nil {
		t.Fatalf("Actions with ACTIONS=*: any %v, %v, %v", v.Any(), v.Actions(), err)
	}
}

// TestTokenAuthenticateExpiry: the principal carries its token's expiry.
func TestTokenAuthenticateExpiry(t *testing.T) {
	fx := newFixture(t)
	for _, ttl := range []time.Duration{0, time.Hour} {
		secret, tok, err := fx.tokens.Create(fx.ctx, app.TokenSpec{UserID: 4, Scopes: []domain.Scope{domain.ScopeRead}, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		p, err := fx.tokens.Authenticate(fx.ctx, secret)
		if err != nil {
			t.Fatal(err)
		}
		if !p.ExpiresAt.Equal(tok.ExpiresAt) || (ttl > 0) == p.ExpiresAt.IsZero() || p.Kind != domain.KindToken {
			t.Errorf("TTL %v: principal %+v, want expiry %v", ttl, p, tok.ExpiresAt)
		}
	}
}
