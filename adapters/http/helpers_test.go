package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/adapters/webhook"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/testenv"
)

// t0 is the fake clock's start; every reading advances it by a millisecond
// so that events have distinct, ordered recorded_at times.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// newClock is the fixture's clock: t0 + 1ms, t0 + 2ms, ...
func newClock() *testenv.Clock {
	c := testenv.NewClock(t0.Add(time.Millisecond))
	c.SetStep(time.Millisecond)
	return c
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture is an API over a memory store with real use cases and tokens.
type fixture struct {
	t      testing.TB
	store  *memory.Store
	events ports.Events // what the use cases use (the store, or a wrapper)
	tokens *app.Tokens
	srv    *httpapi.Server
	logs   *syncBuffer

	admin  string // admin token
	u1     string // user 1: events:read, events:write
	u1ro   string // user 1: events:read
	u1wo   string // user 1: events:write
	u2     string // user 2: events:read, events:write
	u2Name string // principal name of u2

	// Every exchange is checked against the OpenAPI document
	// (openapi_check_test.go). skipRequestCheck skips the request half, for
	// tests that send malformed requests by the thousand; authDisabled
	// (AUTH_MODE=none) lets requests without credentials through.
	skipRequestCheck, authDisabled bool

	privacy domain.Privacy // METADATA_RULES (withPrivacy)
}

type option func(*httpapi.Config, *fixture)

// withStore makes the use cases go through wrap(store) instead of the
// store itself.
func withStore(wrap func(*memory.Store) ports.Events) option {
	return func(_ *httpapi.Config, f *fixture) { f.events = wrap(f.store) }
}

// withPrivacy applies METADATA_RULES rules to every event recorded.
func withPrivacy(p domain.Privacy) option {
	return func(_ *httpapi.Config, f *fixture) { f.privacy = p }
}

func withConfig(fn func(*httpapi.Config)) option {
	return func(c *httpapi.Config, _ *fixture) { fn(c) }
}

func newFixture(t testing.TB, opts ...option) *fixture {
	t.Helper()
	f := &fixture{t: t, store: memory.New(), logs: &syncBuffer{}}
	f.events = f.store
	clock := newClock()
	f.tokens = app.NewTokens(f.store, clock)
	feed := app.NewFeed(f.store, 0)
	guard, err := webhook.NewGuard(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpapi.Config{
		Auth:    f.tokens,
		Storage: f.store,
		Feed:    feed,
		Webhooks: app.NewWebhooks(f.store, f.store, feed.Changed, app.WebhooksConfig{
			Sender:    webhook.NewSender(guard.Client(time.Second), httpapi.AppendChange, "activityd/test"),
			CheckURL:  func(u string) error { return guard.CheckURL(u, false) },
			NewSecret: webhook.NewSecret,
			Clock:     clock,
		}),
		Logger: slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range opts {
		o(&cfg, f)
	}
	cfg.Events = app.NewEvents(f.events, clock, domain.DefaultLimits(), app.NotifyWrites(feed.Notify), app.WithPrivacy(f.privacy))
	f.srv = httpapi.NewServer(cfg)
	f.authDisabled = cfg.AuthDisabled

	f.admin = f.token(0, domain.ScopeAdmin)
	f.u1 = f.token(1, domain.ScopeRead, domain.ScopeWrite)
	f.u1ro = f.token(1, domain.ScopeRead)
	f.u1wo = f.token(1, domain.ScopeWrite)
	var tok domain.Token
	f.u2, tok = f.tokenWith(app.TokenSpec{Name: "u2", UserID: 2, Scopes: []domain.Scope{domain.ScopeRead, domain.ScopeWrite}})
	f.u2Name = tok.Principal().Name
	return f
}

func (f *fixture) token(userID int64, scopes ...domain.Scope) string {
	s, _ := f.tokenWith(app.TokenSpec{UserID: userID, Scopes: scopes})
	return s
}

func (f *fixture) tokenWith(spec app.TokenSpec) (string, domain.Token) {
	f.t.Helper()
	secret, tok, err := f.tokens.Create(context.Background(), spec)
	if err != nil {
		f.t.Fatalf("create token: %v", err)
	}
	return secret, tok
}

// request describes one HTTP request. A body is sent as application/json
// unless a Content-Type header is given ("" for none).
type request struct {
	method, path string
	token        string // sent as "Authorization: Bearer <token>" unless empty
	body         string
	header       map[string]string
}

type response struct {
	t    testing.TB
	req  request
	code int
	hdr  http.Header
	body []byte
}

func (f *fixture) serve(rq request) *response {
	f.t.Helper()
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	req := httptest.NewRequest(rq.method, "http://activityd.test/", body)
	// Set the path and query verbatim, so tests can send what a client
	// could put on the wire without httptest normalising it.
	// The path is decoded as net/http would; an undecodable one is passed
	// through raw (the server would have refused it before any handler).
	path, query, _ := strings.Cut(rq.path, "?")
	if u, err := url.Parse(path); err == nil {
		req.URL.Path, req.URL.RawPath = u.Path, u.RawPath
	} else {
		req.URL.Path, req.URL.RawPath = path, ""
	}
	req.URL.RawQuery, req.RequestURI = query, rq.path
	if rq.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if rq.token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	for k, v := range rq.header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	f.checkOpenAPI(req, []byte(rq.body), rec)
	return &response{t: f.t, req: rq, code: rec.Code, hdr: rec.Header(), body: rec.Body.Bytes()}
}

func (f *fixture) do(method, path, token, body string) *response {
	f.t.Helper()
	return f.serve(request{method: method, path: path, token: token, body: body})
}

func (r *response) String() string {
	return fmt.Sprintf("%s %s → %d %s", r.req.method, r.req.path, r.code, r.body)
}

// want fails the test unless the status is code.
func (r *response) want(code int) *response {
	r.t.Helper()
	if r.code != code {
		r.t.Fatalf("%s %s: status %d, want %d; body: %s", r.req.method, r.req.path, r.code, code, r.body)
	}
	return r
}

// object decodes a JSON object response.
func (r *response) object() map[string]any {
	r.t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		r.t.Fatalf("%s: body is not a JSON object: %v", r, err)
	}
	return m
}

// event decodes a response holding one event (checking its shape).
func (r *response) event() eventDoc {
	r.t.Helper()
	if ct := r.hdr.Get("Content-Type"); ct != "application/json" {
		r.t.Fatalf("%s: Content-Type %q, want application/json", r, ct)
	}
	var e eventDoc
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		r.t.Fatalf("%s: not an event: %v", r, err)
	}
	checkEvent(r.t, e)
	return e
}

type eventDoc struct {
	ID         string          `json:"id"`
	UserID     int64           `json:"user_id"`
	Action     string          `json:"action"`
	Status     string          `json:"status"`
	OccurredAt string          `json:"occurred_at"`
	RecordedAt string          `json:"recorded_at"`
	UpdatedAt  string          `json:"updated_at"`
	Metadata   json.RawMessage `json:"metadata"`
	Legacy     *struct {
		System string `json:"system"`
		ID     int64  `json:"id"`
	} `json:"legacy"`
	StatusHistory []struct {
		From *string `json:"from"`
		To   string  `json:"to"`
		At   string  `json:"at"`
		By   string  `json:"by"`
	} `json:"status_history"`
}

func checkEvent(t testing.TB, e eventDoc) {
	t.Helper()
	if _, err := domain.ParseID(e.ID); err != nil {
		t.Errorf("event id %q is not a UUID", e.ID)
	}
	for name, ts := range map[string]string{"occurred_at": e.OccurredAt, "recorded_at": e.RecordedAt, "updated_at": e.UpdatedAt} {
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") {
			t.Errorf("%s %q is not RFC 3339 UTC", name, ts)
		}
	}
	if len(e.Metadata) == 0 || e.Metadata[0] != '{' {
		t.Errorf("metadata %s is not an object", e.Metadata)
	}
}

type listDoc struct {
	Items      []eventDoc `json:"items"`
	NextCursor *string    `json:"next_cursor"`
}

func (r *response) list() listDoc {
	r.t.Helper()
	r.want(http.StatusOK)
	var l listDoc
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		r.t.Fatalf("%s: not a list: %v", r, err)
	}
	if l.Items == nil {
		r.t.Fatalf("%s: items is not an array", r)
	}
	for _, e := range l.Items {
		checkEvent(r.t, e)
	}
	return l
}

type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// codes lists the problem's errors as field:code.
func (p problemDoc) codes() []string {
	out := make([]string, len(p.Errors))
	for i, e := range p.Errors {
		out[i] = e.Field + ":" + e.Code
	}
	return out
}

// fields lists the fields the problem blames.
func (p problemDoc) fields() []string {
	out := make([]string, len(p.Errors))
	for i, e := range p.Errors {
		out[i] = e.Field
	}
	return out
}

func (p problemDoc) blames(field string) bool {
	for _, e := range p.Errors {
		if e.Field == field {
			return true
		}
	}
	return false
}

// problemErr checks that the response is a well-formed problem document
// whose status matches the response's, and returns it.
func (r *response) problemErr() (problemDoc, error) {
	if ct := r.hdr.Get("Content-Type"); ct != "application/problem+json" {
		return problemDoc{}, fmt.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p problemDoc
	dec := json.NewDecoder(bytes.NewReader(r.body))
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("body is not a problem document: %v", err)
	}
	if p.Status != r.code {
		return p, fmt.Errorf("problem status %d, response status %d", p.Status, r.code)
	}
	if p.Type == "" || p.Title == "" || p.Detail == "" {
		return p, fmt.Errorf("problem lacks type, title or detail")
	}
	for _, e := range p.Errors {
		if e.Field == "" || e.Message == "" || e.Code == "" {
			return p, fmt.Errorf("problem has an error without field, code or message")
		}
	}
	for _, leak := range []string{"goroutine ", ".go:", "panic", "runtime."} {
		if bytes.Contains(r.body, []byte(leak)) {
			return p, fmt.Errorf("problem leaks %q", leak)
		}
	}
	if r.hdr.Get("X-Content-Type-Options") != "nosniff" {
		return p, fmt.Errorf("no X-Content-Type-Options: nosniff")
	}
	return p, nil
}

// problem checks the status and the problem document, and returns it.
func (r *response) problem(code int) problemDoc {
	r.t.Helper()
	r.want(code)
	p, err := r.problemErr()
	if err != nil {
		r.t.Fatalf("%s: %v", r, err)
	}
	return p
}

// storedEvents returns every event in the store.
func (f *fixture) storedEvents() []domain.Event {
	f.t.Helper()
	page, err := f.store.List(context.Background(), domain.Filter{Limit: domain.MaxLimit, Order: domain.Asc, TimeField: domain.ByRecordedAt})
	if err != nil {
		f.t.Fatalf("list store: %v", err)
	}
	return page.Events
}

// create records an event through the API and returns it.
func (f *fixture) create(token, body string) eventDoc {
	f.t.Helper()
	return f.do("POST", "/v1/events", token, body).want(http.StatusCreated).event()
}

// newRawRequest builds a request for serveRaw, for what request cannot
// express (repeated headers, odd methods).
func newRawRequest(method, path, body string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, "http://activityd.test"+path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

func (f *fixture) serveRaw(req *http.Request) *response {
	f.t.Helper()
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	f.checkOpenAPI(req, body, rec)
	return &response{t: f.t, req: request{method: req.Method, path: req.URL.RequestURI()}, code: rec.Code, hdr: rec.Header(), body: rec.Body.Bytes()}
}
