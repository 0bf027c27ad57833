package asynqjobs

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/adapters/webhook"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/stores"
)

// TestWebhookDeliveriesOverAsynq: deliveries run as asynq tasks, one per
// subscription: a receiver failing its first three calls gets its
// message again under the same webhook-id, each retry no sooner than the
// subscription's backoff, then every change in order; while the task
// waits for its retry, no second task is queued.
func TestWebhookDeliveriesOverAsynq(t *testing.T) {
	opts := redisOpts(t)
	store := stores.Memory(t)
	guard, err := webhook.NewGuard([]string{"127.0.0.1/32"})
	if err != nil {
		t.Fatal(err)
	}
	hooks := app.NewWebhooks(store, store, nil, app.WebhooksConfig{
		Sender:    webhook.NewSender(guard.Client(time.Second), httpapi.AppendChange, "activityd/test"),
		CheckURL:  func(u string) error { return guard.CheckURL(u, true) },
		NewSecret: webhook.NewSecret,
		Batch:     2,
		Backoff:   app.ExponentialBackoff(100*time.Millisecond, time.Second),
	})
	var (
		mu    sync.Mutex
		calls []time.Time
		ids   []string
		got   []int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, time.Now())
		ids = append(ids, r.Header.Get("webhook-id"))
		if len(calls) <= 3 {
			http.Error(w, "not yet", http.StatusBadGateway)
			return
		}
		var m struct {
			Data struct {
				Changes []struct {
					Position int64 `json:"position"`
				} `json:"changes"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("body: %v", err)
		}
		for _, c := range m.Data.Changes {
			got = append(got, c.Position)
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	admin := domain.Principal{Name: "admin", Scopes: []domain.Scope{domain.ScopeAdmin}}
	url, from := srv.URL, "0"
	sub, _, err := hooks.Create(ctx, admin, app.WebhookInput{URL: &url, From: from})
	if err != nil {
		t.Fatal(err)
	}
	events := app.NewEvents(store, ports.SystemClock, domain.DefaultLimits())
	p := domain.Principal{Name: "w", UserID: 3, Scopes: []domain.Scope{domain.ScopeWrite}}
	for range 5 {
		if _, _, err := events.Record(ctx, p, domain.NewEvent{Action: "login"}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := NewDeliveries(DeliveriesConfig{Redis: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if n, err := d.Enqueue(ctx, []string{sub.ID}); err != nil || n != 1 {
		t.Fatalf("Enqueue = %d, %v", n, err)
	}
	startWorker(t, WorkerConfig{Redis: opts, Webhooks: hooks}, &fakeJob{})
	// While the task fails and waits for its retry, it is not queued twice.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(calls)
		mu.Unlock()
		if n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no delivery attempt")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n, err := d.Enqueue(ctx, []string{sub.ID}); err != nil || n != 0 {
		t.Errorf("Enqueue while the task is retried = %d, %v; want 0", n, err)
	}
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivered %v", got)
		}
		if _, err := d.Enqueue(ctx, []string{sub.ID}); err != nil { // as serve's poll does
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, want := range []int64{1, 2, 3, 4, 5} {
		if got[i] != want {
			t.Fatalf("delivered %v, want 1..5 in order", got)
		}
	}
	for i := 1; i <= 3; i++ {
		if ids[i] != ids[0] {
			t.Errorf("attempt %d had webhook-id %s, the first %s", i+1, ids[i], ids[0])
		}
		// Backoff 100, 200, 400 ms after failures 1, 2, 3 (asynq may add
		// its own polling delay, never take any off).
		if gap, min := calls[i].Sub(calls[i-1]), time.Duration(100<<(i-1))*time.Millisecond; gap < min-10*time.Millisecond {
			t.Errorf("retry %d came %s after the previous attempt, before the backoff %s", i, gap, min)
		}
	}
	s, err := hooks.Get(ctx, admin, sub.ID)
	if err != nil || s.State.Position != 5 || s.State.Failures != 0 {
		t.Errorf("state after delivery = %+v, %v", s.State, err)
	}
}
