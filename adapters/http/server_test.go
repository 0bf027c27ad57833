package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

type pingFunc func(context.Context) error

func (f pingFunc) Ping(ctx context.Context) error { return f(ctx) }

type authFunc func(context.Context, string) (domain.Principal, error)

func (f authFunc) Authenticate(ctx context.Context, s string) (domain.Principal, error) {
	return f(ctx, s)
}

// faultyEvents is the memory store with an error injected into every
// event operation.
type faultyEvents struct {
	*memory.Store
	mu  sync.Mutex
	err error
}

func (s *faultyEvents) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *faultyEvents) fault() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *faultyEvents) Create(ctx context.Context, e domain.Event, by string) (domain.Event, bool, error) {
	if err := s.fault(); err != nil {
		return domain.Event{}, false, err
	}
	return s.Store.Create(ctx, e, by)
}

func (s *faultyEvents) CreateMany(ctx context.Context, es []domain.Event, by string) ([]ports.Created, error) {
	if err := s.fault(); err != nil {
		return nil, err
	}
	return s.Store.CreateMany(ctx, es, by)
}

func (s *faultyEvents) Get(ctx context.Context, id domain.ID) (domain.Event, error) {
	if err := s.fault(); err != nil {
		return domain.Event{}, err
	}
	return s.Store.Get(ctx, id)
}

func (s *faultyEvents) History(ctx context.Context, id domain.ID) ([]domain.Transition, error) {
	if err := s.fault(); err != nil {
		return nil, err
	}
	return s.Store.History(ctx, id)
}

func (s *faultyEvents) List(ctx context.Context, f domain.Filter) (domain.Page, error) {
	if err := s.fault(); err != nil {
		return domain.Page{}, err
	}
	return s.Store.List(ctx, f)
}

func (s *faultyEvents) SetStatus(ctx context.Context, id domain.ID, from, to domain.Status, at time.Time, by string) (domain.Event, error) {
	if err := s.fault(); err != nil {
		return domain.Event{}, err
	}
	return s.Store.SetStatus(ctx, id, from, to, at, by)
}

func TestHealth(t *testing.T) {
	f := newFixture(t)
	r := f.do("GET", "/healthz", "", "").want(200)
	if string(r.body) != `{"status":"ok"}`+"\n" || r.hdr.Get("Content-Type") != "application/json" {
		t.Errorf("healthz: %s (%s)", r.body, r.hdr.Get("Content-Type"))
	}
	f.do("HEAD", "/healthz", "", "").want(200)
	r = f.do("GET", "/readyz", "", "").want(200)
	if string(r.body) != `{"status":"ready","storage":"ok"}`+"\n" {
		t.Errorf("readyz: %s", r.body)
	}
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	r = f.do("GET", "/readyz", "", "")
	r.problem(503)
	if r.hdr.Get("Retry-After") == "" || !strings.Contains(string(r.body), `"storage":"unavailable"`) {
		t.Errorf("unready: Retry-After %q, body %s", r.hdr.Get("Retry-After"), r.body)
	}
	// Liveness does not depend on storage.
	f.do("GET", "/healthz", "", "").want(200)
}

func TestReadyTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	hang := pingFunc(func(context.Context) error { <-release; return nil }) // ignores its context
	f := newFixture(t, withConfig(func(c *httpapi.Config) { c.Storage = hang }))
	r := f.do("GET", "/readyz", "", "")
	r.problem(503)
	if !strings.Contains(string(r.body), `"storage":"unavailable"`) {
		t.Errorf("body %s", r.body)
	}

	f = newFixture(t, withConfig(func(c *httpapi.Config) { c.Storage = nil }))
	f.do("GET", "/readyz", "", "").want(200)
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t)
	revoked, tok := f.tokenWith(app.TokenSpec{UserID: 1, Scopes: []domain.Scope{domain.ScopeRead}})
	if err := f.tokens.Revoke(context.Background(), tok.ID); err != nil {
		t.Fatal(err)
	}
	expired, _ := f.tokenWith(app.TokenSpec{UserID: 1, Scopes: []domain.Scope{domain.ScopeRead}, TTL: time.Millisecond})

	tests := []struct {
		name   string
		header []string // Authorization values
		code   int
	}{
		{"missing", nil, 401},
		{"empty", []string{""}, 401},
		{"scheme only", []string{"Bearer"}, 401},
		{"scheme and spaces", []string{"Bearer   "}, 401},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, 401},
		{"unknown token", []string{"Bearer adt_nope"}, 401},
		{"revoked token", []string{"Bearer " + revoked}, 401},
		{"expired token", []string{"Bearer " + expired}, 401},
		{"secret with a space", []string{"Bearer " + f.u1 + " x"}, 401},
		{"two headers", []string{"Bearer " + f.u1, "Token " + f.u1}, 401},
		{"bearer", []string{"Bearer " + f.u1}, 200},
		{"token", []string{"Token " + f.u1}, 200},
		{"lower-case scheme", []string{"bearer " + f.u1}, 200},
		{"extra spaces", []string{"  Token   " + f.u1 + " "}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.t = t
			req := newRawRequest("GET", "/v1/events", "")
			for _, v := range tt.header {
				req.Header.Add("Authorization", v)
			}
			r := f.serveRaw(req)
			if tt.code == 200 {
				r.want(200)
				return
			}
			p := r.problem(tt.code)
			if !strings.Contains(r.hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", r.hdr.Get("WWW-Authenticate"))
			}
			for _, v := range tt.header {
				if _, secret, _ := strings.Cut(v, " "); len(secret) > 8 && strings.Contains(p.Detail, secret) {
					t.Errorf("detail echoes the credential: %q", p.Detail)
				}
			}
		})
	}
	f.t = t
	// Every authenticated route requires credentials; operational ones do not.
	for _, rt := range []struct{ method, path, body string }{
		{"POST", "/v1/events", `{"action":"login"}`},
		{"POST", "/v1/events/batch", `{"events":[{"action":"login"}]}`},
		{"GET", "/v1/events", ""},
		{"GET", "/v1/events/0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70", ""},
		{"PATCH", "/v1/events/0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70", `{"status":"DONE"}`},
		{"GET", "/v1/users/1/events", ""},
	} {
		f.do(rt.method, rt.path, "", rt.body).problem(401)
	}
	if n := len(f.storedEvents()); n != 0 {
		t.Errorf("unauthenticated requests stored %d events", n)
	}
}

func TestAuthDisabled(t *testing.T) {
	f := newFixture(t, withConfig(func(c *httpapi.Config) { c.AuthDisabled = true; c.Auth = nil }))
	e := f.create("", `{"user_id":5,"action":"login"}`)
	f.do("PATCH", "/v1/events/"+e.ID, "", `{"status":"IN_PROGRESS"}`).want(200)
	got := f.do("GET", "/v1/events/"+e.ID, "garbage-is-ignored", "").event()
	if got.StatusHistory[0].By != "anonymous" || got.StatusHistory[1].By != "anonymous" {
		t.Errorf("history %+v, want by anonymous", got.StatusHistory)
	}
	if l := f.do("GET", "/v1/events", "", "").list(); len(l.Items) != 1 {
		t.Errorf("anonymous (admin) lists %d events", len(l.Items))
	}
}

func TestAuthenticatorErrors(t *testing.T) {
	var mu sync.Mutex
	var authErr error
	auth := authFunc(func(context.Context, string) (domain.Principal, error) {
		mu.Lock()
		defer mu.Unlock()
		return domain.Principal{}, authErr
	})
	f := newFixture(t, withConfig(func(c *httpapi.Config) { c.Auth = auth }))
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("token store: %w", domain.ErrUnavailable), 503},
		{context.DeadlineExceeded, 503},
		{domain.ErrNotFound, 401},
		{fmt.Errorf("%w: bad signature", domain.ErrUnauthenticated), 401},
		{errors.New("pq: password authentication failed for user \"secret-db-user\""), 500},
	} {
		mu.Lock()
		authErr = tc.err
		mu.Unlock()
		r := f.do("GET", "/v1/events", "whatever", "")
		p := r.problem(tc.code)
		if tc.code == 503 && r.hdr.Get("Retry-After") == "" {
			t.Errorf("%v: 503 without Retry-After", tc.err)
		}
		if strings.Contains(string(r.body), "secret-db-user") {
			t.Errorf("%v: response leaks the error: %+v", tc.err, p)
		}
	}
	if !strings.Contains(f.logs.String(), "secret-db-user") {
		t.Error("the internal error was not logged")
	}
}

// TestStorageErrors: storage outages are 503 with Retry-After on every
// route; unexpected errors are a generic 500 whose cause is only logged.
func TestStorageErrors(t *testing.T) {
	var faulty *faultyEvents
	f := newFixture(t, withStore(func(s *memory.Store) ports.Events {
		faulty = &faultyEvents{Store: s}
		return faulty
	}))
	e := f.create(f.u1, `{"action":"login"}`)
	routes := []struct{ method, path, body string }{
		{"POST", "/v1/events", `{"action":"login"}`},
		{"POST", "/v1/events/batch", `{"events":[{"action":"login"}]}`},
		{"GET", "/v1/events", ""},
		{"GET", "/v1/events/" + e.ID, ""},
		{"PATCH", "/v1/events/" + e.ID, `{"status":"IN_PROGRESS"}`},
		{"GET", "/v1/users/1/events", ""},
	}
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("postgres: %w", domain.ErrUnavailable), 503},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), 503},
		{errors.New("pq: relation \"events_secret_table\" does not exist"), 500},
	} {
		faulty.setErr(tc.err)
		for _, rt := range routes {
			r := f.do(rt.method, rt.path, f.u1, rt.body)
			r.problem(tc.code)
			if tc.code == 503 && r.hdr.Get("Retry-After") != "1" {
				t.Errorf("%s %s: Retry-After %q", rt.method, rt.path, r.hdr.Get("Retry-After"))
			}
			if strings.Contains(string(r.body), "events_secret_table") {
				t.Errorf("%s %s leaks the error: %s", rt.method, rt.path, r.body)
			}
		}
	}
	if !strings.Contains(f.logs.String(), "events_secret_table") {
		t.Error("the internal error was not logged")
	}
	faulty.setErr(nil)
	if n := len(f.storedEvents()); n != 1 {
		t.Errorf("store holds %d events, want 1", n)
	}
}

func TestRouting(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, path, token string
		code                int
		allow               []string
	}{
		{"GET", "/", "", 404, nil},
		{"GET", "/v2/events", "", 404, nil},
		{"GET", "/v1/events/", f.u1, 404, nil},
		{"GET", "/v1/users/1", f.u1, 404, nil},
		{"GET", "/v1/activity-counts", f.u1, 404, nil},
		{"GET", "/v1/events/a/b", f.u1, 404, nil},
		{"DELETE", "/v1/events", "", 405, []string{"GET", "HEAD", "POST"}},
		{"PUT", "/v1/events/0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70", "", 405, []string{"GET", "HEAD", "PATCH"}},
		{"GET", "/v1/events/batch", f.u1, 404, nil}, // read as GET /v1/events/{id}
		{"DELETE", "/v1/events/batch", "", 405, []string{"GET", "HEAD", "POST", "PATCH"}},
		{"POST", "/healthz", "", 405, []string{"GET", "HEAD"}},
		{"PROPFIND", "/v1/events", "", 405, []string{"GET", "HEAD", "POST"}},
		{"PROPFIND", "/nowhere", "", 404, nil},
	} {
		r := f.do(tc.method, tc.path, tc.token, "")
		r.problem(tc.code)
		if tc.allow != nil {
			got := r.hdr.Values("Allow")
			slices.Sort(got)
			slices.Sort(tc.allow)
			if !slices.Equal(got, tc.allow) {
				t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
			}
		}
	}
}

func TestPanicRecovery(t *testing.T) {
	f := newFixture(t)
	f.srv.Router().Get("/boom", func(http.ResponseWriter, *http.Request) { panic("kaboom in handler") })
	r := f.do("GET", "/boom", "", "")
	p := r.problem(500)
	if strings.Contains(p.Detail, "kaboom") {
		t.Errorf("panic value leaked: %+v", p)
	}
	if !strings.Contains(f.logs.String(), "kaboom in handler") {
		t.Error("panic not logged")
	}
	f.do("GET", "/healthz", "", "").want(200) // still serving
}

func TestAccessLog(t *testing.T) {
	f := newFixture(t)
	e := f.create(f.u1, `{"action":"login","metadata":{"note":"very-private-note"}}`)
	f.do("GET", "/v1/events/"+e.ID+"", f.u1, "").want(200)
	f.do("GET", "/v1/events?user_id=1&action=login", f.u1, "").want(200)
	f.do("GET", "/nope", "", "").problem(404)
	logs := f.logs.String()
	for _, want := range []string{`"route":"/v1/events/{id}"`, `"route":"/v1/events"`, `"method":"POST"`, `"status":201`, `"status":404`, `"route":"unmatched"`, `"duration"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("access log lacks %s:\n%s", want, logs)
		}
	}
	for _, leak := range []string{f.u1, "very-private-note", "Authorization", "Bearer"} {
		if strings.Contains(logs, leak) {
			t.Errorf("access log contains %q", leak)
		}
	}
}

func TestResponseHeaders(t *testing.T) {
	f := newFixture(t)
	for _, r := range []*response{
		f.do("GET", "/healthz", "", ""),
		f.do("GET", "/v1/events", f.u1, ""),
		f.do("POST", "/v1/events", f.u1, `{"action":"login"}`),
		f.do("GET", "/v1/events", "", ""),
	} {
		if r.hdr.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", r)
		}
		ct := r.hdr.Get("Content-Type")
		if (r.code < 400 && ct != "application/json") || (r.code >= 400 && ct != "application/problem+json") {
			t.Errorf("%s: Content-Type %q", r, ct)
		}
	}
}

func TestNewServerPanics(t *testing.T) {
	events := app.NewEvents(memory.New(), ports.SystemClock, domain.DefaultLimits())
	for name, cfg := range map[string]httpapi.Config{
		"no events": {Auth: authFunc(nil)},
		"no auth":   {Events: events},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: NewServer did not panic", name)
				}
			}()
			httpapi.NewServer(cfg)
		}()
	}
	// Defaults: no logger, no body limit, auth disabled without an Authenticator.
	srv := httpapi.NewServer(httpapi.Config{Events: events, AuthDisabled: true, Logger: slog.Default()})
	if srv.Router() == nil {
		t.Error("no router")
	}
}

func TestMaxBodyBytes(t *testing.T) {
	f := newFixture(t, withConfig(func(c *httpapi.Config) { c.MaxBodyBytes = 64 }))
	f.create(f.u1, `{"action":"login"}`)
	body := `{"action":"login","metadata":{"a":"` + strings.Repeat("x", 64) + `"}}`
	f.do("POST", "/v1/events", f.u1, body).problem(413)
	// Without a Content-Length the limit holds while reading.
	req := newRawRequest("POST", "/v1/events", body)
	req.Header.Set("Authorization", "Bearer "+f.u1)
	req.ContentLength = -1
	f.serveRaw(req).problem(413)
	f.do("PATCH", "/v1/events/x", f.u1, `{"status":"`+strings.Repeat("X", 64)+`"}`).problem(413)
	if n := len(f.storedEvents()); n != 1 {
		t.Errorf("store holds %d events, want 1", n)
	}
}

// TestNoStore: every answer behind credentials — success, problem, 401 —
// tells shared caches not to keep it; public routes keep their own policy.
func TestNoStore(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/v1/users/1/events", f.u1, 200},
		{"GET", "/v1/events", f.admin, 200},
		{"GET", "/v1/users/2/events", f.u1, 403},
		{"GET", "/v1/events", "", 401},
		{"GET", "/v1/events/nope", f.u1, 404},
	} {
		r := f.do(tc.method, tc.path, tc.token, "")
		if r.code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, r.code, tc.want)
		}
		if got := r.hdr.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s %s: Cache-Control %q, want no-store", tc.method, tc.path, got)
		}
	}
	if got := f.do("GET", "/healthz", "", "").hdr.Get("Cache-Control"); got == "no-store" {
		t.Errorf("/healthz: Cache-Control %q; only answers behind credentials are no-store", got)
	}
}

// canceledList is a store whose List waits for its caller to give up.
type canceledList struct{ *memory.Store }

func (s canceledList) List(ctx context.Context, _ domain.Filter) (domain.Page, error) {
	<-ctx.Done()
	return domain.Page{}, ctx.Err()
}

// TestClientClosed: a request its client abandons is answered (to nobody)
// with 499 and logged as such, not as a 503 the server never sent.
func TestClientClosed(t *testing.T) {
	f := newFixture(t, withStore(func(m *memory.Store) ports.Events { return canceledList{m} }))
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest("GET", "/v1/users/1/events", nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+f.u1)
	rec := httptest.NewRecorder()
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	f.srv.ServeHTTP(rec, req)
	if rec.Code != 499 || rec.Header().Get("Retry-After") != "" {
		t.Fatalf("status %d, Retry-After %q; want 499 and none", rec.Code, rec.Header().Get("Retry-After"))
	}
	if !strings.Contains(rec.Body.String(), `"title":"Client Closed Request"`) || !strings.Contains(rec.Body.String(), "client-closed") {
		t.Errorf("body %s", rec.Body.String())
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `"status":499`) || strings.Contains(logs, `"status":503`) {
		t.Errorf("log lines do not say 499 (or say 503): %s", logs)
	}
}

// blockingList is a store whose List waits until release is closed.
type blockingList struct {
	*memory.Store
	entered chan struct{}
	release chan struct{}
}

func (s blockingList) List(ctx context.Context, f domain.Filter) (domain.Page, error) {
	s.entered <- struct{}{}
	<-s.release
	return s.Store.List(ctx, f)
}

// TestShedding: past MaxInFlight requests being served, one more is
// answered 503 overloaded with Retry-After at once; probes still answer;
// a slot that frees up serves again.
func TestShedding(t *testing.T) {
	bl := blockingList{entered: make(chan struct{}, 2), release: make(chan struct{})}
	f := newFixture(t,
		withStore(func(m *memory.Store) ports.Events { bl.Store = m; return bl }),
		withConfig(func(c *httpapi.Config) { c.MaxInFlight = 2 }))
	done := make(chan int, 2)
	for range 2 {
		go func() {
			req := httptest.NewRequest("GET", "/v1/users/1/events", nil)
			req.Header.Set("Authorization", "Bearer "+f.u1)
			rec := httptest.NewRecorder()
			f.srv.ServeHTTP(rec, req)
			done <- rec.Code
		}()
	}
	<-bl.entered
	<-bl.entered
	r := f.do("GET", "/v1/users/1/events", f.u1, "")
	r.problem(503)
	if r.hdr.Get("Retry-After") == "" || !strings.Contains(string(r.body), "overloaded") {
		t.Errorf("the third request: Retry-After %q, body %s", r.hdr.Get("Retry-After"), r.body)
	}
	f.do("GET", "/healthz", "", "").want(200)
	f.do("GET", "/readyz", "", "").want(200)
	close(bl.release)
	for range 2 {
		if code := <-done; code != 200 {
			t.Errorf("a request in flight answered %d, want 200", code)
		}
	}
	f.do("GET", "/v1/users/1/events", f.u1, "").want(200)
}

// TestLogClientAddr: the request log line names the client's address, so
// failed authentications can be traced to their source.
func TestLogClientAddr(t *testing.T) {
	f := newFixture(t)
	req := httptest.NewRequest("GET", "/v1/events", nil)
	req.RemoteAddr = "203.0.113.7:40000"
	req.Header.Set("Authorization", "Bearer adt_not_a_token")
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Fatalf("status %d, want 401", rec.Code)
	}
	if logs := f.logs.String(); !strings.Contains(logs, `"client":"203.0.113.7"`) || !strings.Contains(logs, `"status":401`) {
		t.Errorf("no log line with the client address: %s", logs)
	}
}
