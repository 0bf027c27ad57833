package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// downStore is a store whose event operations fail as an unreachable
// backend does while down is set; tokens keep working.
type downStore struct {
	ports.Store
	down atomic.Bool
}

func (d *downStore) fail(op string) error {
	return fmt.Errorf("%s: connection refused: %w", op, domain.ErrUnavailable)
}

func (d *downStore) Create(ctx context.Context, e domain.Event, by string) (domain.Event, bool, error) {
	if d.down.Load() {
		return domain.Event{}, false, d.fail("create")
	}
	return d.Store.Create(ctx, e, by)
}

func (d *downStore) Get(ctx context.Context, id domain.ID) (domain.Event, error) {
	if d.down.Load() {
		return domain.Event{}, d.fail("get")
	}
	return d.Store.Get(ctx, id)
}

func (d *downStore) List(ctx context.Context, f domain.Filter) (domain.Page, error) {
	if d.down.Load() {
		return domain.Page{}, d.fail("list")
	}
	return d.Store.List(ctx, f)
}

func (d *downStore) SetStatus(ctx context.Context, id domain.ID, from, to domain.Status, at time.Time, by string) (domain.Event, error) {
	if d.down.Load() {
		return domain.Event{}, d.fail("set status")
	}
	return d.Store.SetStatus(ctx, id, from, to, at, by)
}

// TestCompatStorageUnavailable: with storage down, every route of the
// predecessors' surfaces answers 503 with Retry-After in its own error
// shape, never a 500.
func TestCompatStorageUnavailable(t *testing.T) {
	ds := &downStore{}
	cf := newCompatFixture(t, func(t *testing.T) ports.Store { ds.Store = memoryStore(t); return ds })
	u6 := cf.user(6)
	l := cf.call("POST", "/api/logs/", u6, logsExample).logEntry(http.StatusCreated)
	ds.down.Store(true)
	for _, rq := range []struct{ method, path, body string }{
		{"POST", "/api/event", trackingExample},
		{"GET", "/api/events?user_id=6", ""},
		{"POST", "/api/logs/", logsExample},
		{"GET", "/api/logs/6/", ""},
		{"PATCH", "/api/logs/update/" + l.ID.String() + "/", `{"status":"IN_PROGRESS"}`},
	} {
		r := cf.call(rq.method, rq.path, u6, rq.body)
		if rq.path[:10] == "/api/event" {
			r.trackingProblem(http.StatusServiceUnavailable, "Service Unavailable")
		} else {
			r.problem(http.StatusServiceUnavailable)
		}
		if r.hdr.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", r)
		}
	}
	ds.down.Store(false)
	if ls := cf.call("GET", "/api/logs/6/", u6, "").logEntries(); len(ls) != 1 || ls[0].Status != "PENDING" {
		t.Errorf("after the outage: %+v", ls)
	}
}
