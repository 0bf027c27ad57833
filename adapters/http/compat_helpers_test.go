package httpapi_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/stores"
	"github.com/activityd/activityd/test/testenv"
)

// The predecessor-surface suites (compat_events_test.go,
// compat_logs_test.go) take a store constructor, so that they can run
// against every storage adapter: trackingSuite(t, newStore) and
// loggerSuite(t, newStore). Each subtest gets a fresh store.

// newStoreFunc returns an empty, migrated store that lives as long as t.
type newStoreFunc func(t *testing.T) ports.Store

// The stores the suites run on, opened by test/stores.
func memoryStore(t *testing.T) ports.Store { return stores.Memory(t) }
func sqliteStore(t *testing.T) ports.Store { return stores.SQLite(t) }
func pgStore(t *testing.T) ports.Store     { return stores.Postgres(t) }

// compatT0 is the compat fixture's clock start: after the dates in
// compat.md's examples, so that their event_action_timestamp is not in the
// future.
var compatT0 = time.Date(2025, 11, 1, 9, 0, 0, 0, time.UTC)

// compatFixture is the API over any store, with real use cases and
// tokens. It reuses fixture's request helpers; fixture.store is nil.
type compatFixture struct {
	*fixture
	st     ports.Store
	clock  *testenv.Clock
	admin  string
	tokens map[string]string // "<user>/<scopes>" → secret
}

type compatOption func(*httpapi.Config, *compatFixture)

func newCompatFixture(t *testing.T, newStore newStoreFunc, opts ...compatOption) *compatFixture {
	t.Helper()
	st := newStore(t)
	clock := testenv.NewClock(compatT0)
	clock.SetStep(time.Millisecond)
	f := &fixture{t: t, tokens: app.NewTokens(st, clock), logs: &syncBuffer{}}
	cf := &compatFixture{fixture: f, st: st, clock: clock, tokens: map[string]string{}}
	cfg := httpapi.Config{
		Auth:    f.tokens,
		Storage: st,
		Logger:  slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range opts {
		o(&cfg, cf)
	}
	cfg.Events = app.NewEvents(st, clock, domain.DefaultLimits(), app.WithLegacyIDs(st))
	f.srv = httpapi.NewServer(cfg)
	cf.admin = f.token(0, domain.ScopeAdmin)
	return cf
}

// user returns a token for user id with the given scopes (read and write
// when none are given), made once per fixture.
func (cf *compatFixture) user(id int64, scopes ...domain.Scope) string {
	if len(scopes) == 0 {
		scopes = []domain.Scope{domain.ScopeRead, domain.ScopeWrite}
	}
	key := fmt.Sprintf("%d/%v", id, scopes)
	if tok, ok := cf.tokens[key]; ok {
		return tok
	}
	tok := cf.token(id, scopes...)
	cf.tokens[key] = tok
	return tok
}

// call sends a request with "Authorization: Token <token>" (DRF's scheme;
// none when token is ""), and further headers as name, value pairs.
func (cf *compatFixture) call(method, path, token, body string, hdr ...string) *response {
	cf.t.Helper()
	h := map[string]string{}
	if token != "" {
		h["Authorization"] = "Token " + token
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	return cf.serve(request{method: method, path: path, body: body, header: h})
}

// stored returns every stored event, oldest recorded first, ties by id.
func (cf *compatFixture) stored() []domain.Event {
	cf.t.Helper()
	return storedIn(cf.t, cf.st)
}

func storedIn(t testing.TB, st ports.Store) []domain.Event {
	t.Helper()
	f := domain.Filter{Limit: domain.MaxLimit, Order: domain.Asc, TimeField: domain.ByRecordedAt}
	var all []domain.Event
	for {
		page, err := st.List(context.Background(), f)
		if err != nil {
			t.Fatalf("list store: %v", err)
		}
		all = append(all, page.Events...)
		if page.Next == nil {
			return all
		}
		f.After = page.Next
	}
}

// uuidOf is the UUID of an id as a surface shows it: an activity-logger
// log number (an integer) or a UUID.
func uuidOf(id string) string {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		return domain.LegacyID{System: domain.ActivityLogger, N: n}.ID().String()
	}
	return id
}

// get returns one stored event, by either kind of id (uuidOf).
func (cf *compatFixture) get(id string) domain.Event {
	cf.t.Helper()
	eid, err := domain.ParseID(uuidOf(id))
	if err != nil {
		cf.t.Fatalf("id %q: %v", id, err)
	}
	e, err := cf.st.Get(context.Background(), eid)
	if err != nil {
		cf.t.Fatalf("get %s: %v", id, err)
	}
	return e
}

// sortedByRecorded returns the ids of es ordered by recorded_at, ties by
// id: the predecessors' listing order, computed independently of any store.
func sortedByRecorded(es []domain.Event) []string {
	es = slices.Clone(es)
	slices.SortFunc(es, func(a, b domain.Event) int {
		return cmp.Or(a.RecordedAt.Compare(b.RecordedAt), bytes.Compare(a.ID[:], b.ID[:]))
	})
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID.String()
	}
	return out
}

// --- Response shapes ------------------------------------------------------

// exactObject decodes one JSON object, checking that its members are
// exactly keys, and then into v.
func exactObject(t testing.TB, what string, raw []byte, v any, keys ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: not a JSON object: %v: %s", what, err, raw)
	}
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(keys))
	if !slices.Equal(got, want) {
		t.Fatalf("%s: members %q, want exactly %q: %s", what, got, want, raw)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v: %s", what, err, raw)
	}
}

// jsonArray decodes a 200 response holding a bare JSON array.
func (r *response) jsonArray() []json.RawMessage {
	r.t.Helper()
	r.want(http.StatusOK)
	if ct := r.hdr.Get("Content-Type"); ct != "application/json" {
		r.t.Fatalf("%s: Content-Type %q, want application/json", r, ct)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(r.body), []byte("[")) {
		r.t.Fatalf("%s: not a bare JSON array", r)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(r.body, &items); err != nil {
		r.t.Fatalf("%s: %v", r, err)
	}
	return items
}

// sameJSON reports whether two JSON documents hold the same value.
func sameJSON(t testing.TB, got json.RawMessage, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

// isRFC3339UTC reports whether s is an RFC 3339 time in UTC with a Z.
func isRFC3339UTC(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil && strings.HasSuffix(s, "Z")
}

// problemExt checks the problem document and returns its members.
func (r *response) problemExt(code int) (problemDoc, map[string]json.RawMessage) {
	r.t.Helper()
	p := r.problem(code)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &m); err != nil {
		r.t.Fatalf("%s: %v", r, err)
	}
	return p, m
}

// stringMemberOf returns a string member of a decoded object, failing the
// test when it is absent or not a string.
func stringMemberOf(t testing.TB, m map[string]json.RawMessage, name string) string {
	t.Helper()
	raw, ok := m[name]
	if !ok {
		t.Fatalf("no %q member in %v", name, keysOf(m))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("member %q is %s, not a string", name, raw)
	}
	return s
}

func keysOf(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
