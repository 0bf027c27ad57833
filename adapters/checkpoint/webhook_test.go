package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/webhook"
	"github.com/activityd/activityd/domain"
)

// receiver is a webhook receiver answering each attempt with the next
// status of answers (the last one from then on), checking each request the
// way a receiver should.
type receiver struct {
	t       *testing.T
	secret  string
	answers []int

	mu       sync.Mutex
	attempts int
	ids      []string
	bodies   [][]byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		r.t.Error(err)
	}
	if err := webhook.Verify(r.secret, req.Header, body, time.Now(), 0); err != nil {
		r.t.Errorf("the signature does not verify: %v", err)
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		r.t.Errorf("%s with Content-Type %q, want a POST of JSON", req.Method, req.Header.Get("Content-Type"))
	}
	r.mu.Lock()
	status := r.answers[min(r.attempts, len(r.answers)-1)]
	r.attempts++
	r.ids = append(r.ids, req.Header.Get(webhook.HeaderID))
	r.bodies = append(r.bodies, body)
	r.mu.Unlock()
	w.WriteHeader(status)
}

// seen returns the attempts so far, their webhook-ids and bodies.
func (r *receiver) seen() (int, []string, [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts, r.ids, r.bodies
}

// newTestWebhook is a Webhook to srv, with secret, retrying at once.
func newTestWebhook(t *testing.T, srv *httptest.Server, secret string, allow []string) *Webhook {
	t.Helper()
	g, err := webhook.NewGuard(allow)
	if err != nil {
		t.Fatal(err)
	}
	sub := domain.Subscription{ID: "wh_test", URL: srv.URL + "/hook", Secrets: []domain.WebhookSecret{{Secret: secret}}}
	w, err := NewWebhook(sub, wiring(g))
	if err != nil {
		t.Fatal(err)
	}
	w.backoff = time.Millisecond
	return w
}

func TestWebhook(t *testing.T) {
	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	c, leaves := signed(t, testKey, 1234, 3)
	for _, tc := range []struct {
		name     string
		answers  []int
		attempts int
		err      string // "" for success
	}{
		{"delivered", []int{204}, 1, ""},
		{"a 500 then delivered", []int{500, 200}, 2, ""},
		{"503 and 429 then delivered", []int{503, 429, 502, 200}, 4, ""},
		{"gives up after the retries", []int{500}, 1 + Retries, "attempt 4): webhook POST: the receiver answered 500"},
		{"a 400 is not retried", []int{400, 200}, 1, "answered 400"},
		{"a redirect is not followed", []int{302, 200}, 1, "answered 302"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &receiver{t: t, secret: secret, answers: tc.answers}
			srv := httptest.NewServer(r)
			defer srv.Close()
			w := newTestWebhook(t, srv, secret, []string{"127.0.0.0/8", "::1"})
			if w.Name() != "webhook:wh_test" {
				t.Fatalf("Name() = %q", w.Name())
			}
			err := w.Put(context.Background(), c, leaves)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Put: %v; want error %q", err, tc.err)
			}
			attempts, ids, bodies := r.seen()
			if attempts != tc.attempts {
				t.Fatalf("%d attempts, want %d", attempts, tc.attempts)
			}
			for i, id := range ids {
				if id != "checkpoint-1234" {
					t.Fatalf("attempt %d: webhook-id %q, want checkpoint-1234", i+1, id)
				}
				var typ struct{ Type string }
				if err := json.Unmarshal(bodies[i], &typ); err != nil || typ.Type != MessageType {
					t.Fatalf("attempt %d: type %q, %v; want %q", i+1, typ.Type, err, MessageType)
				}
				got, gotLeaves, err := Decode(bodies[i])
				if err != nil || !equal(got, c) || !slices.Equal(gotLeaves, leaves) {
					t.Fatalf("attempt %d: the body decodes to %+v, %v", i+1, got, err)
				}
			}
		})
	}
}

// TestWebhookGuard: the sink goes through the SSRF guard, and a refused
// address is not tried again.
func TestWebhookGuard(t *testing.T) {
	secret, _ := webhook.NewSecret()
	r := &receiver{t: t, secret: secret, answers: []int{200}}
	srv := httptest.NewServer(r)
	defer srv.Close()
	w := newTestWebhook(t, srv, secret, nil)
	c, leaves := signed(t, testKey, 1, 1)
	err := w.Put(context.Background(), c, leaves)
	if !errors.Is(err, webhook.ErrRefusedAddress) || !strings.Contains(err.Error(), "attempt 1)") {
		t.Fatalf("Put to loopback without an allow list: %v; want ErrRefusedAddress at the first attempt", err)
	}
	if n, _, _ := r.seen(); n != 0 {
		t.Fatalf("the receiver saw %d attempts", n)
	}
}

// TestWebhookNetworkError: a receiver that is not there is tried again,
// then given up on; a cancelled context stops the retries.
func TestWebhookNetworkError(t *testing.T) {
	secret, _ := webhook.NewSecret()
	srv := httptest.NewServer(http.NotFoundHandler())
	w := newTestWebhook(t, srv, secret, []string{"127.0.0.0/8", "::1"})
	srv.Close() // nothing listens there now
	c, leaves := signed(t, testKey, 1, 1)
	if err := w.Put(context.Background(), c, leaves); err == nil || !strings.Contains(err.Error(), "attempt 4)") {
		t.Fatalf("Put to a closed port: %v; want a failure after 4 attempts", err)
	}
	w.backoff = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Put(ctx, c, leaves); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put with a deadline during the backoff: %v, want DeadlineExceeded", err)
	}
}

// wiring is the WebhookConfig cmd/activityd gives: adapters/webhook's
// guard, signature and refused addresses.
func wiring(g *webhook.Guard) WebhookConfig {
	return WebhookConfig{Client: g.Client(5 * time.Second), Sign: webhook.SetHeaders,
		Final: func(err error) bool { return errors.Is(err, webhook.ErrRefusedAddress) }}
}

func TestNewWebhookRefuses(t *testing.T) {
	if _, err := NewWebhook(domain.Subscription{ID: "wh_1", URL: "https://example.com/", Secrets: []domain.WebhookSecret{{Secret: "whsec_x"}}}, WebhookConfig{}); err == nil {
		t.Error("NewWebhook without a client and a signer succeeded")
	}
	secrets := []domain.WebhookSecret{{Secret: "whsec_x"}}
	for _, sub := range []domain.Subscription{
		{URL: "https://example.com/", Secrets: secrets},
		{ID: "wh_1", URL: "ftp://example.com/", Secrets: secrets},
		{ID: "wh_1", URL: "/relative", Secrets: secrets},
		{ID: "wh_1", URL: "https://example.com/"},
	} {
		if _, err := NewWebhook(sub, wiring(&webhook.Guard{})); err == nil {
			t.Errorf("NewWebhook(%+v) succeeded", sub)
		}
	}
}
