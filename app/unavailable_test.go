package app_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

var errDown = fmt.Errorf("%w: connection refused", domain.ErrUnavailable)

// downStore fails every call once down is set.
type downStore struct {
	*memory.Store
	down bool
}

func (d *downStore) Create(ctx context.Context, e domain.Event, by string) (domain.Event, bool, error) {
	if d.down {
		return domain.Event{}, false, errDown
	}
	return d.Store.Create(ctx, e, by)
}

func (d *downStore) CreateMany(ctx context.Context, es []domain.Event, by string) ([]ports.Created, error) {
	if d.down {
		return nil, errDown
	}
	return d.Store.CreateMany(ctx, es, by)
}

func (d *downStore) Get(ctx context.Context, id domain.ID) (domain.Event, error) {
	if d.down {
		return domain.Event{}, errDown
	}
	return d.Store.Get(ctx, id)
}

func (d *downStore) History(ctx context.Context, id domain.ID) ([]domain.Transition, error) {
	if d.down {
		return nil, errDown
	}
	return d.Store.History(ctx, id)
}

func (d *downStore) List(ctx context.Context, f domain.Filter) (domain.Page, error) {
	if d.down {
		return domain.Page{}, errDown
	}
	return d.Store.List(ctx, f)
}

func (d *downStore) SetStatus(ctx context.Context, id domain.ID, from, to domain.Status, at time.Time, by string) (domain.Event, error) {
	if d.down {
		return domain.Event{}, errDown
	}
	return d.Store.SetStatus(ctx, id, from, to, at, by)
}

func (d *downStore) CreateToken(ctx context.Context, t domain.Token) error {
	if d.down {
		return errDown
	}
	return d.Store.CreateToken(ctx, t)
}

func (d *downStore) TokenByHash(ctx context.Context, hash []byte) (domain.Token, error) {
	if d.down {
		return domain.Token{}, errDown
	}
	return d.Store.TokenByHash(ctx, hash)
}

func (d *downStore) ListTokens(ctx context.Context) ([]domain.Token, error) {
	if d.down {
		return nil, errDown
	}
	return d.Store.ListTokens(ctx)
}

func (d *downStore) RevokeToken(ctx context.Context, id string, at time.Time) error {
	if d.down {
		return errDown
	}
	return d.Store.RevokeToken(ctx, id, at)
}

// Storage failures come back matching domain.ErrUnavailable, never as a
// domain answer (not found, unauthenticated, ...).
func TestStorageUnavailable(t *testing.T) {
	ctx := context.Background()
	st := &downStore{Store: memory.New()}
	clock := ports.ClockFunc(func() time.Time { return start })
	events := app.NewEvents(st, clock, domain.DefaultLimits())
	tokens := app.NewTokens(st, clock)

	e, _, err := events.Record(ctx, alice, domain.NewEvent{Action: "login"})
	if err != nil {
		t.Fatal(err)
	}
	secret, tok, err := tokens.Create(ctx, app.TokenSpec{UserID: 1, Scopes: rw})
	if err != nil {
		t.Fatal(err)
	}
	st.down = true

	calls := map[string]error{}
	_, _, calls["Record"] = events.Record(ctx, alice, domain.NewEvent{Action: "login"})
	items, err := events.RecordBatch(ctx, alice, []domain.NewEvent{{Action: "login"}, {Action: "!"}})
	calls["RecordBatch"] = err
	if items != nil {
		t.Errorf("RecordBatch returned items %v with a batch error", items)
	}
	_, _, calls["Get"] = events.Get(ctx, alice, e.ID.String())
	_, calls["List"] = events.List(ctx, alice, domain.Query{}, "")
	_, calls["Transition"] = events.Transition(ctx, alice, e.ID.String(), "IN_PROGRESS")
	_, _, calls["Tokens.Create"] = tokens.Create(ctx, app.TokenSpec{UserID: 1, Scopes: rw})
	_, calls["Authenticate"] = tokens.Authenticate(ctx, secret)
	_, calls["Tokens.List"] = tokens.List(ctx)
	calls["Revoke"] = tokens.Revoke(ctx, tok.ID)
	_, _, calls["Bootstrap"] = tokens.Bootstrap(ctx, "")
	for name, err := range calls {
		if !errors.Is(err, domain.ErrUnavailable) {
			t.Errorf("%s with storage down = %v, want ErrUnavailable", name, err)
		}
		if errors.Is(err, domain.ErrNotFound) || errors.Is(err, domain.ErrUnauthenticated) {
			t.Errorf("%s reports storage down as %v", name, err)
		}
	}

	// History failing after Get succeeded.
	st.down = false
	hs := &historyDown{downStore: st}
	events = app.NewEvents(hs, clock, domain.DefaultLimits())
	_, _, err = events.Get(ctx, alice, e.ID.String())
	if !errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("Get with History down = %v", err)
	}
}

type historyDown struct{ *downStore }

func (h *historyDown) History(context.Context, domain.ID) ([]domain.Transition, error) {
	return nil, errDown
}
