package app_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/test/stores"
	"github.com/activityd/activityd/test/testenv"
)

// start carries nanoseconds so tests see times normalised to microseconds.
var start = time.Date(2025, 10, 10, 18, 30, 0, 123456789, time.UTC)

type fixture struct {
	ctx    context.Context
	store  *memory.Store
	clock  *testenv.Clock
	events *app.Events
	tokens *app.Tokens
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	store := stores.Memory(t)
	clk := testenv.NewClock(start)
	return &fixture{
		ctx:    context.Background(),
		store:  store,
		clock:  clk,
		events: app.NewEvents(store, clk, domain.DefaultLimits()),
		tokens: app.NewTokens(store, clk),
	}
}

// count returns how many events the store holds, across users.
func (fx *fixture) count(t *testing.T) int {
	t.Helper()
	page, err := fx.store.List(fx.ctx, domain.Filter{Limit: domain.MaxLimit, Order: domain.Desc, TimeField: domain.ByRecordedAt})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Events)
}

// record records in as p and fails the test on error.
func (fx *fixture) record(t *testing.T, p domain.Principal, in domain.NewEvent) domain.Event {
	t.Helper()
	e, created, err := fx.events.Record(fx.ctx, p, in)
	if err != nil || !created {
		t.Fatalf("Record(%+v) = created %v, %v", in, created, err)
	}
	return e
}

var (
	rw     = []domain.Scope{domain.ScopeRead, domain.ScopeWrite}
	alice  = domain.Principal{Name: "token:alice", UserID: 1, Scopes: rw}
	bob    = domain.Principal{Name: "token:bob", UserID: 2, Scopes: rw}
	reader = domain.Principal{Name: "token:reader", UserID: 1, Scopes: []domain.Scope{domain.ScopeRead}}
	writer = domain.Principal{Name: "token:writer", UserID: 1, Scopes: []domain.Scope{domain.ScopeWrite}}
	admin  = domain.Principal{Name: "token:admin", Scopes: []domain.Scope{domain.ScopeAdmin}}
)

// wantFields checks err is a *domain.ValidationError naming exactly fields.
func wantFields(t *testing.T, err error, fields ...string) {
	t.Helper()
	if !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	var ve *domain.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %T %v, want *ValidationError", err, err)
	}
	got := make([]string, len(ve.Fields))
	for i, f := range ve.Fields {
		got[i] = f.Field
	}
	if strings.Join(got, ",") != strings.Join(fields, ",") {
		t.Fatalf("fields = %v, want %v (%v)", got, fields, err)
	}
}

// wantErr checks errors.Is(err, target).
func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

// keyed returns in with an idempotency key.
func keyed(in domain.NewEvent, key string) domain.NewEvent {
	in.IdempotencyKey = key
	return in
}
