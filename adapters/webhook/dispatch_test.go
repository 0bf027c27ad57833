package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/adapters/webhook"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/stores"
)

var hookAdmin = domain.Principal{Name: "test:admin", Scopes: []domain.Scope{domain.ScopeAdmin}}

// message is a delivery as the receiver decodes it.
type message struct {
	Type string `json:"type"`
	Data struct {
		Subscription string `json:"subscription"`
		Changes      []struct {
			Position int64  `json:"position"`
			Kind     string `json:"kind"`
			Event    struct {
				ID     string `json:"id"`
				UserID int64  `json:"user_id"`
				Action string `json:"action"`
				Status string `json:"status"`
			} `json:"event"`
		} `json:"changes"`
	} `json:"data"`
}

// receiver is an endpoint that fails, times out and answers slowly at
// random, and checks every message it takes with the official Standard
// Webhooks library (not this package's code), against each secret it
// knows.
type receiver struct {
	t       *testing.T
	mu      sync.Mutex
	secrets []string // a message must verify with at least one
	flaky   bool
	took    []message // answered 2xx, in arrival order
	ids     []string
	bad     int // messages that verified with no secret
	calls   int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.calls++
	secrets := append([]string(nil), rc.secrets...)
	flaky := rc.flaky
	rc.mu.Unlock()
	verified := false
	for _, s := range secrets {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			rc.t.Errorf("official library refuses secret: %v", err)
			return
		}
		if wh.Verify(body, r.Header) == nil {
			verified = true
		}
	}
	if !verified {
		rc.mu.Lock()
		rc.bad++
		rc.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if flaky {
		switch n := rand.IntN(10); {
		case n < 3:
			http.Error(w, "flaky", http.StatusInternalServerError)
			return
		case n < 4:
			time.Sleep(400 * time.Millisecond) // beyond the sender's timeout
			return
		case n < 6:
			time.Sleep(30 * time.Millisecond) // slow, in time
		}
	}
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		rc.t.Errorf("a delivery is not JSON: %v: %s", err, body)
		return
	}
	rc.mu.Lock()
	rc.took = append(rc.took, m)
	rc.ids = append(rc.ids, r.Header.Get("webhook-id"))
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// hookRig is the webhook use cases over a store, delivering with the real
// Sender through a Guard that allows loopback (the test's receiver).
type hookRig struct {
	store  ports.Store
	events *app.Events
	hooks  *app.Webhooks
}

func newHookRig(t *testing.T, store ports.Store, maxFailures int) *hookRig {
	t.Helper()
	feed := app.NewFeed(store, 20*time.Millisecond)
	guard, err := webhook.NewGuard([]string{"127.0.0.1/32"})
	if err != nil {
		t.Fatal(err)
	}
	hooks := app.NewWebhooks(store, store, feed.Changed, app.WebhooksConfig{
		Sender:      webhook.NewSender(guard.Client(200*time.Millisecond), httpapi.AppendChange, "activityd/test"),
		CheckURL:    func(u string) error { return guard.CheckURL(u, true) },
		NewSecret:   webhook.NewSecret,
		Batch:       7,
		MaxFailures: maxFailures,
		Backoff:     app.ExponentialBackoff(time.Millisecond, 20*time.Millisecond),
		Poll:        20 * time.Millisecond,
	})
	events := app.NewEvents(store, ports.SystemClock, domain.DefaultLimits(), app.NotifyWrites(feed.Notify))
	return &hookRig{store: store, events: events, hooks: hooks}
}

func (h *hookRig) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.hooks.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestDelivery: concurrent writers (single, batch, transitions) while the
// dispatcher delivers to a flaky receiver, a secret rotated mid-way: the
// receiver gets every matching change, in feed order, each message
// verified by the official library; retries repeat a message under the
// same webhook-id.
func TestDelivery(t *testing.T) {
	for _, kind := range []struct {
		name string
		open func(t *testing.T) ports.Store
	}{
		{"memory", func(t *testing.T) ports.Store { return stores.Memory(t) }},
		{"sqlite", func(t *testing.T) ports.Store { return stores.SQLite(t) }},
		{"postgres", func(t *testing.T) ports.Store { return stores.Postgres(t) }},
	} {
		t.Run(kind.name, func(t *testing.T) {
			rig := newHookRig(t, kind.open(t), 1000)
			rc := &receiver{t: t, flaky: true}
			srv := httptest.NewServer(rc)
			t.Cleanup(srv.Close)
			ctx := context.Background()
			url := srv.URL + "/hook"
			sub, secret, err := rig.hooks.Create(ctx, hookAdmin, app.WebhookInput{URL: &url, Actions: &[]string{"login", "upload_file"}})
			if err != nil {
				t.Fatal(err)
			}
			rc.mu.Lock()
			rc.secrets = []string{secret}
			rc.mu.Unlock()
			rig.run(t)

			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p := domain.Principal{Name: "writer", UserID: int64(w + 1), Scopes: []domain.Scope{domain.ScopeRead, domain.ScopeWrite}}
					for i := range 12 {
						action := []string{"login", "upload_file", "deleted"}[i%3]
						switch i % 4 {
						case 0, 1:
							e, _, err := rig.events.Record(ctx, p, domain.NewEvent{Action: action})
							if err != nil {
								t.Error(err)
								return
							}
							if i%2 == 1 {
								if _, err := rig.events.Transition(ctx, p, e.ID.String(), "IN_PROGRESS"); err != nil {
									t.Error(err)
								}
							}
						default:
							if _, err := rig.events.RecordBatch(ctx, p, []domain.NewEvent{{Action: action}, {Action: "login"}, {Action: "deleted"}}); err != nil {
								t.Error(err)
							}
						}
						if w == 0 && i == 6 { // rotate mid-way: the receiver learns the new secret only
							_, fresh, err := rig.hooks.Rotate(ctx, hookAdmin, sub.ID)
							if err != nil {
								t.Error(err)
							}
							rc.mu.Lock()
							rc.secrets = []string{fresh}
							rc.mu.Unlock()
						}
					}
				}()
			}
			wg.Wait()

			// The whole feed, and what the subscription must get of it.
			var want []int64
			for after := int64(0); ; {
				cs, err := rig.store.Changes(ctx, domain.ChangeFilter{After: after, Limit: 1000})
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range cs {
					if c.Event.Action == "login" || c.Event.Action == "upload_file" {
						want = append(want, c.Position)
					}
				}
				if len(cs) < 1000 {
					break
				}
				after = cs[len(cs)-1].Position
			}
			deadline := time.Now().Add(60 * time.Second)
			var got []int64
			for {
				got = got[:0]
				rc.mu.Lock()
				var last int64
				taken := map[int64]bool{}
				for i, m := range rc.took {
					for _, c := range m.Data.Changes {
						if c.Position <= last {
							// At least once: a change again (a retry the
							// receiver had taken), never one it missed.
							if !taken[c.Position] {
								t.Fatalf("out of order: position %d, never delivered before, after %d (message %s)", c.Position, last, rc.ids[i])
							}
							continue
						}
						taken[c.Position] = true
						if c.Event.Action != "login" && c.Event.Action != "upload_file" {
							t.Fatalf("the filter let %s through", c.Event.Action)
						}
						last = c.Position
						got = append(got, c.Position)
					}
				}
				rc.mu.Unlock()
				if len(got) >= len(want) || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if len(got) != len(want) {
				t.Fatalf("delivered %d of %d changes", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("delivery %d is position %d, want %d", i, got[i], want[i])
				}
			}
			ds, err := rig.hooks.Deliveries(ctx, hookAdmin, sub.ID, 1000)
			if err != nil {
				t.Fatal(err)
			}
			failed := 0
			for _, d := range ds {
				if !d.OK() {
					failed++
				}
			}
			rc.mu.Lock()
			t.Logf("%d changes delivered in %d calls (%d attempts logged, %d failed, %d refused signatures)", len(got), rc.calls, len(ds), failed, rc.bad)
			rc.mu.Unlock()
			if failed == 0 {
				t.Error("the flaky receiver never failed a delivery: the retries went untested")
			}
		})
	}
}

// TestDeliveryPauses: a receiver that always fails pauses the
// subscription after MaxFailures attempts of one message, each logged
// under the same webhook-id; resuming delivers it.
func TestDeliveryPauses(t *testing.T) {
	rig := newHookRig(t, stores.Memory(t), 3)
	var mu sync.Mutex
	failing := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	url := srv.URL
	sub, _, err := rig.hooks.Create(ctx, hookAdmin, app.WebhookInput{URL: &url})
	if err != nil {
		t.Fatal(err)
	}
	p := domain.Principal{Name: "w", UserID: 1, Scopes: []domain.Scope{domain.ScopeWrite}}
	if _, _, err := rig.events.Record(ctx, p, domain.NewEvent{Action: "login"}); err != nil {
		t.Fatal(err)
	}
	rig.run(t)
	waitFor(t, func() bool {
		s, err := rig.hooks.Get(ctx, hookAdmin, sub.ID)
		return err == nil && s.State.Paused
	})
	s, _ := rig.hooks.Get(ctx, hookAdmin, sub.ID)
	if s.State.Failures != 3 || s.State.Position != 0 || s.State.Pending != 1 || !strings.Contains(s.State.LastError, "503") {
		t.Errorf("paused state = %+v", s.State)
	}
	ds, err := rig.hooks.Deliveries(ctx, hookAdmin, sub.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 || ds[0].Attempt != 3 || ds[2].Attempt != 1 || ds[0].MessageID != ds[2].MessageID || ds[0].StatusCode != 503 || ds[0].OK() {
		t.Errorf("delivery log = %+v", ds)
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	paused := false
	if _, err := rig.hooks.Update(ctx, hookAdmin, sub.ID, app.WebhookInput{Paused: &paused}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		s, err := rig.hooks.Get(ctx, hookAdmin, sub.ID)
		return err == nil && s.State.Position == 1 && s.State.Pending == 0 && s.State.Failures == 0
	})
	// Replay from 0: the change is delivered again.
	if _, err := rig.hooks.Replay(ctx, hookAdmin, sub.ID, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		ds, err := rig.hooks.Deliveries(ctx, hookAdmin, sub.ID, 10)
		return err == nil && len(ds) == 5 && ds[0].OK() && ds[0].First == 1
	})
}

// TestDeliveryRefusesPrivateTargets: the guard refuses a loopback target
// at subscription, and at dial time when the target got past the check
// (a name resolving to loopback, here stored directly).
func TestDeliveryRefusesPrivateTargets(t *testing.T) {
	store := stores.Memory(t)
	feed := app.NewFeed(store, 20*time.Millisecond)
	guard, err := webhook.NewGuard(nil)
	if err != nil {
		t.Fatal(err)
	}
	hooks := app.NewWebhooks(store, store, feed.Changed, app.WebhooksConfig{
		Sender:    webhook.NewSender(guard.Client(time.Second), httpapi.AppendChange, "activityd/test"),
		CheckURL:  func(u string) error { return guard.CheckURL(u, true) },
		NewSecret: webhook.NewSecret,
	})
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	url := srv.URL
	if _, _, err := hooks.Create(ctx, hookAdmin, app.WebhookInput{URL: &url}); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("subscribing %s: %v, want refused", url, err)
	}
	secret, _ := webhook.NewSecret()
	sub := domain.Subscription{ID: "wh_aaaaaaaaaaaaaaaaaaaaaaaaaa", URL: strings.Replace(srv.URL, "127.0.0.1", "localhost", 1),
		Secrets: []domain.WebhookSecret{{Secret: secret}}}
	if err := store.CreateSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	e := domain.Event{ID: domain.NewID(time.Now()), UserID: 1, Action: "login", Status: domain.StatusPending,
		RecordedAt: time.Now(), OccurredAt: time.Now(), UpdatedAt: time.Now()}
	if _, _, err := store.Create(ctx, e, "t"); err != nil {
		t.Fatal(err)
	}
	step, err := hooks.Deliver(ctx, sub.ID)
	if err != nil || !step.Failed {
		t.Fatalf("Deliver to a loopback target: %+v, %v; want a failed attempt", step, err)
	}
	ds, _ := hooks.Deliveries(ctx, hookAdmin, sub.ID, 1)
	if len(ds) != 1 || !strings.Contains(ds[0].Error, "refusing to connect to 127.0.0.1") {
		t.Errorf("delivery log: %+v, want the refusal", ds)
	}
	if hit {
		t.Error("the loopback target was reached")
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDeliveryHostileStatusLine: a receiver answering with bytes
// PostgreSQL refuses (invalid UTF-8, NUL) in its status line still
// counts as a failure, with backoff, and is logged.
func TestDeliveryHostileStatusLine(t *testing.T) {
	store := stores.Postgres(t)
	rig := newHookRig(t, store, 1000)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				_, _ = c.Read(buf)
				_, _ = c.Write([]byte("HTTP/1.1 503 Busy \xff\xfe\r\nContent-Length: 0\r\n\r\n"))
			}()
		}
	}()
	ctx := context.Background()
	url := "http://" + ln.Addr().String() + "/"
	sub, _, err := rig.hooks.Create(ctx, hookAdmin, app.WebhookInput{URL: &url, From: "0"})
	if err != nil {
		t.Fatal(err)
	}
	p := domain.Principal{Name: "w", UserID: 1, Scopes: []domain.Scope{domain.ScopeWrite}}
	if _, _, err := rig.events.Record(ctx, p, domain.NewEvent{Action: "login"}); err != nil {
		t.Fatal(err)
	}
	step, err := rig.hooks.Deliver(ctx, sub.ID)
	if err != nil || !step.Failed {
		t.Fatalf("Deliver = %+v, %v; want a failed attempt", step, err)
	}
	s, err := rig.hooks.Get(ctx, hookAdmin, sub.ID)
	if err != nil || s.State.Failures != 1 || s.State.NextTry.IsZero() || !utf8.ValidString(s.State.LastError) {
		t.Errorf("state = %+v, %v; want one failure, a retry time, a storable error", s.State, err)
	}
	ds, err := rig.hooks.Deliveries(ctx, hookAdmin, sub.ID, 10)
	if err != nil || len(ds) != 1 || ds[0].OK() {
		t.Errorf("delivery log = %+v, %v; want the failed attempt", ds, err)
	}
}
