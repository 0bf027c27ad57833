package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestCreateEvent(t *testing.T) {
	f := newFixture(t)

	r := f.do("POST", "/v1/events", f.u1, `{"action":"LOGIN","occurred_at":"2025-06-01T10:30:00.123+02:00","metadata":{"b":1,"a":"x"}}`)
	e := r.want(http.StatusCreated).event()
	if got, want := r.hdr.Get("Location"), "/v1/events/"+e.ID; got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	if e.UserID != 1 || e.Action != "login" || e.Status != "PENDING" {
		t.Errorf("event %+v: want user 1 (the token's), action login, PENDING", e)
	}
	if e.OccurredAt != "2025-06-01T08:30:00.123Z" {
		t.Errorf("occurred_at %q, want the same instant in UTC", e.OccurredAt)
	}
	if string(e.Metadata) != `{"a":"x","b":1}` {
		t.Errorf("metadata %s", e.Metadata)
	}
	if e.RecordedAt != e.UpdatedAt {
		t.Errorf("recorded_at %s and updated_at %s differ on a new event", e.RecordedAt, e.UpdatedAt)
	}

	// Defaults: occurred_at is recorded_at, metadata is {}.
	e = f.create(f.admin, `{"user_id":42,"action":"viewed"}`)
	if e.UserID != 42 || e.OccurredAt != e.RecordedAt || string(e.Metadata) != "{}" {
		t.Errorf("event %+v: want user 42, occurred_at = recorded_at, metadata {}", e)
	}
	// null reads as "not sent".
	e = f.create(f.u1, `{"user_id":null,"action":"viewed","metadata":null,"occurred_at":null,"id":null}`)
	if e.UserID != 1 || string(e.Metadata) != "{}" {
		t.Errorf("event %+v: want user 1, metadata {}", e)
	}
	// A client id; the Content-Type may carry a charset or be a +json type.
	id := "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70"
	r = f.serve(request{method: "POST", path: "/v1/events", token: f.u1, body: `{"id":"` + id + `","action":"created"}`,
		header: map[string]string{"Content-Type": "application/json; charset=UTF-8"}})
	if e := r.want(http.StatusCreated).event(); e.ID != id {
		t.Errorf("id %s, want the client's %s", e.ID, id)
	}
	r = f.serve(request{method: "POST", path: "/v1/events", token: f.u1, body: `{"action":"created"}`,
		header: map[string]string{"Content-Type": "application/vnd.activityd+json"}})
	r.want(http.StatusCreated)
	// Token works as well as Bearer.
	r = f.serve(request{method: "POST", path: "/v1/events", body: `{"action":"logout"}`,
		header: map[string]string{"Authorization": "Token " + f.u1}})
	r.want(http.StatusCreated)

	if n := len(f.storedEvents()); n != 6 {
		t.Errorf("store holds %d events, want 6", n)
	}
}

func TestCreateEventErrors(t *testing.T) {
	tests := []struct {
		name   string
		token  string // "" → user 1
		body   string
		header map[string]string
		path   string // "" → /v1/events
		code   int
		fields []string // fields the problem must blame, in order
	}{
		{name: "malformed JSON", body: `{"action":`, code: 400},
		{name: "not JSON", body: `action=login`, code: 400},
		{name: "trailing object", body: `{"action":"login"}{"action":"login"}`, code: 400},
		{name: "trailing garbage", body: `{"action":"login"} x`, code: 400},
		{name: "trailing bracket", body: `{"action":"login"}]`, code: 400},
		{name: "empty body", body: ``, code: 400},
		{name: "blank body", body: " \n\t ", code: 400},
		{name: "array body", body: `[{"action":"login"}]`, code: 400, fields: []string{"(body)"}},
		{name: "string body", body: `"login"`, code: 400, fields: []string{"(body)"}},
		{name: "unknown field", body: `{"action":"login","foo":1}`, code: 400, fields: []string{"foo"}},
		{name: "several unknown fields", body: `{"foo":1,"action":"login","Action":"x"}`, code: 400, fields: []string{"foo", "Action"}},
		{name: "duplicate field", body: `{"action":"login","action":"logout"}`, code: 400, fields: []string{"action"}},
		{name: "string user_id", body: `{"user_id":"1","action":"login"}`, code: 400, fields: []string{"user_id"}},
		{name: "bool user_id", body: `{"user_id":true,"action":"login"}`, code: 400, fields: []string{"user_id"}},
		{name: "number action", body: `{"action":7}`, code: 400, fields: []string{"action"}},
		{name: "object action", body: `{"action":{}}`, code: 400, fields: []string{"action"}},
		{name: "number occurred_at", body: `{"action":"login","occurred_at":1700000000}`, code: 400, fields: []string{"occurred_at"}},
		{name: "number id", body: `{"action":"login","id":5}`, code: 400, fields: []string{"id"}},
		{name: "type errors together", body: `{"action":1,"user_id":"x","zzz":0}`, code: 400, fields: []string{"action", "user_id", "zzz"}},
		{name: "invalid UTF-8", body: "{\"action\":\"log\xffin\"}", code: 400},
		{name: "too deep", body: `{"action":"login","metadata":{"a":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}}`, code: 400},

		{name: "fractional user_id", body: `{"user_id":1.5,"action":"login"}`, code: 422, fields: []string{"user_id"}},
		{name: "exponent user_id", body: `{"user_id":1e3,"action":"login"}`, code: 422, fields: []string{"user_id"}},
		{name: "zero user_id", body: `{"user_id":0,"action":"login"}`, code: 422, fields: []string{"user_id"}},
		{name: "negative user_id", body: `{"user_id":-4,"action":"login"}`, code: 422, fields: []string{"user_id"}},
		{name: "huge user_id", body: `{"user_id":99999999999999999999,"action":"login"}`, code: 422, fields: []string{"user_id"}},
		{name: "admin without user", token: "admin", body: `{"action":"login"}`, code: 422, fields: []string{"user_id"}},
		{name: "missing action", body: `{}`, code: 422, fields: []string{"action"}},
		{name: "null action", body: `{"action":null}`, code: 422, fields: []string{"action"}},
		{name: "unknown action", body: `{"action":"dance"}`, code: 422, fields: []string{"action"}},
		{name: "ill-formed action", body: `{"action":"log in"}`, code: 422, fields: []string{"action"}},
		{name: "bad occurred_at", body: `{"action":"login","occurred_at":"yesterday"}`, code: 422, fields: []string{"occurred_at"}},
		{name: "empty occurred_at", body: `{"action":"login","occurred_at":""}`, code: 422, fields: []string{"occurred_at"}},
		{name: "future occurred_at", body: `{"action":"login","occurred_at":"2030-01-01T00:00:00Z"}`, code: 422, fields: []string{"occurred_at"}},
		{name: "bad id", body: `{"action":"login","id":"42"}`, code: 422, fields: []string{"id"}},
		{name: "empty id", body: `{"action":"login","id":""}`, code: 422, fields: []string{"id"}},
		{name: "nil id", body: `{"action":"login","id":"00000000-0000-0000-0000-000000000000"}`, code: 422, fields: []string{"id"}},
		{name: "array metadata", body: `{"action":"login","metadata":[1]}`, code: 422, fields: []string{"metadata"}},
		{name: "string metadata", body: `{"action":"login","metadata":"{}"}`, code: 422, fields: []string{"metadata"}},
		{name: "NUL in metadata", body: `{"action":"login","metadata":{"a":"x\u0000y"}}`, code: 422, fields: []string{"metadata"}},
		{name: "NUL in metadata key", body: `{"action":"login","metadata":{"\u0000":1}}`, code: 422, fields: []string{"metadata"}},
		{name: "huge metadata", body: `{"action":"login","metadata":{"a":"` + strings.Repeat("x", 20000) + `"}}`, code: 422, fields: []string{"metadata"}},
		{name: "rule errors together", body: `{"action":"dance","user_id":-1,"occurred_at":"x","metadata":1,"id":"y"}`, code: 422,
			fields: []string{"id", "user_id", "action", "occurred_at", "metadata"}},
		{name: "long Idempotency-Key", body: `{"action":"login"}`, header: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)},
			code: 422, fields: []string{"Idempotency-Key"}},

		{name: "text/plain", body: `{"action":"login"}`, header: map[string]string{"Content-Type": "text/plain"}, code: 415},
		{name: "no Content-Type", body: `{"action":"login"}`, header: map[string]string{"Content-Type": ""}, code: 415},
		{name: "form", body: `action=login`, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, code: 415},
		{name: "latin-1", body: `{"action":"login"}`, header: map[string]string{"Content-Type": "application/json; charset=latin1"}, code: 415},
		{name: "gzip", body: `{"action":"login"}`, header: map[string]string{"Content-Encoding": "gzip"}, code: 415, fields: []string{"Content-Encoding"}},
		{name: "bad media type", body: `{"action":"login"}`, header: map[string]string{"Content-Type": "application/json; ;;"}, code: 415},
		{name: "too large", body: `{"action":"login","metadata":{"a":"` + strings.Repeat("x", 1<<20) + `"}}`, code: 413},

		{name: "other user", body: `{"user_id":2,"action":"login"}`, code: 403},
		{name: "read-only token", token: "ro", body: `{"action":"login"}`, code: 403},
		{name: "read-only token, invalid event", token: "ro", body: `{"action":"dance"}`, code: 403},
		{name: "no token", token: "none", body: `{"action":"login"}`, code: 401},
		{name: "unknown query parameter", path: "/v1/events?dry_run=1", body: `{"action":"login"}`, code: 400, fields: []string{"dry_run"}},
	}
	f := newFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.t = t
			token := map[string]string{"": f.u1, "admin": f.admin, "ro": f.u1ro, "none": ""}[tt.token]
			path := tt.path
			if path == "" {
				path = "/v1/events"
			}
			r := f.serve(request{method: "POST", path: path, token: token, body: tt.body, header: tt.header})
			p := r.problem(tt.code)
			if tt.fields != nil && !slices.Equal(p.fields(), tt.fields) {
				t.Errorf("problem blames %q, want %q: %s", p.fields(), tt.fields, r.body)
			}
		})
	}
	f.t = t
	if n := len(f.storedEvents()); n != 0 {
		t.Errorf("store holds %d events after rejected requests", n)
	}
}

func TestCreateEventMessages(t *testing.T) {
	f := newFixture(t)
	p := f.do("POST", "/v1/events", f.u1, `{"action":"login","foo":1}`).problem(400)
	if !strings.Contains(p.Errors[0].Message, "not a known field") {
		t.Errorf("unknown-field message %q", p.Errors[0].Message)
	}
	p = f.do("POST", "/v1/events", f.u1, `{"user_id":"7","action":"login"}`).problem(400)
	if p.Errors[0].Message != "must be an integer, not a string" {
		t.Errorf("type message %q", p.Errors[0].Message)
	}
	p = f.do("POST", "/v1/events", f.u1, `{"action":"login"} {}`).problem(400)
	if !strings.Contains(p.Detail, "after the JSON value") {
		t.Errorf("trailing-data detail %q", p.Detail)
	}
	r := f.serve(request{method: "POST", path: "/v1/events", token: f.u1, body: `x`, header: map[string]string{"Content-Type": "text/plain"}})
	r.problem(415)
	if r.hdr.Get("Accept-Post") == "" {
		t.Error("415 without Accept-Post")
	}
}

func TestIdempotency(t *testing.T) {
	f := newFixture(t)
	id := "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70"
	body := `{"id":"` + id + `","action":"login","occurred_at":"2025-06-01T10:00:00Z","metadata":{"a":1,"b":2}}`

	first := f.create(f.u1, body)
	// A retry, even with metadata keys in another order, returns the stored event.
	r := f.do("POST", "/v1/events", f.u1, `{"id":"`+id+`","action":"LOGIN","metadata":{"b":2,"a":1}}`)
	if again := r.want(http.StatusOK).event(); !reflect.DeepEqual(again, first) {
		t.Errorf("retry returned %+v, want %+v", again, first)
	}
	if r.hdr.Get("Location") != "" {
		t.Error("a retry carries Location")
	}
	// Other content under the same id is a conflict naming id.
	for _, b := range []string{
		`{"id":"` + id + `","action":"logout"}`,
		`{"id":"` + id + `","action":"login","metadata":{"a":2,"b":2}}`,
		`{"id":"` + id + `","action":"login","occurred_at":"2025-06-01T10:00:01Z","metadata":{"a":1,"b":2}}`,
	} {
		p := f.do("POST", "/v1/events", f.u1, b).problem(http.StatusConflict)
		if !p.blames("id") {
			t.Errorf("%s: conflict does not blame id: %+v", b, p)
		}
	}
	// The same id for another user is a conflict too (ids are global).
	f.do("POST", "/v1/events", f.u2, `{"id":"`+id+`","action":"login"}`).problem(http.StatusConflict)

	// Idempotency-Key.
	post := func(token, key, body string) *response {
		return f.serve(request{method: "POST", path: "/v1/events", token: token, body: body,
			header: map[string]string{"Idempotency-Key": key}})
	}
	k1 := post(f.u1, "order-17", `{"action":"created","metadata":{"order":17}}`).want(http.StatusCreated).event()
	k2 := post(f.u1, "order-17", `{"action":"created","metadata":{"order":17}}`).want(http.StatusOK).event()
	if !reflect.DeepEqual(k1, k2) {
		t.Errorf("retry with the same key returned %+v, want %+v", k2, k1)
	}
	p := post(f.u1, "order-17", `{"action":"deleted","metadata":{"order":17}}`).problem(http.StatusConflict)
	if !p.blames("Idempotency-Key") {
		t.Errorf("key conflict does not blame Idempotency-Key: %+v", p)
	}
	// Keys are scoped per user.
	k3 := post(f.u2, "order-17", `{"action":"created","metadata":{"order":17}}`).want(http.StatusCreated).event()
	if k3.ID == k1.ID {
		t.Error("two users' equal keys made the same event")
	}
	if n := len(f.storedEvents()); n != 3 {
		t.Errorf("store holds %d events, want 3", n)
	}
}

func TestDuplicateIdempotencyKeyHeader(t *testing.T) {
	f := newFixture(t)
	req := newRawRequest("POST", "/v1/events", `{"action":"login"}`)
	req.Header.Set("Authorization", "Bearer "+f.u1)
	req.Header.Add("Idempotency-Key", "a")
	req.Header.Add("Idempotency-Key", "b")
	p := f.serveRaw(req).problem(400)
	if !p.blames("Idempotency-Key") {
		t.Errorf("problem does not blame Idempotency-Key: %+v", p)
	}
}

func TestBatch(t *testing.T) {
	f := newFixture(t)
	existing := f.create(f.u1, `{"id":"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70","action":"login"}`)

	body := `{"events":[
		{"action":"login","metadata":{"n":0}},
		{"action":"dance"},
		{"user_id":2,"action":"login"},
		{"id":"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70","action":"login"},
		{"id":"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70","action":"logout"},
		{"user_id":1.5,"action":"login","occurred_at":"nope"},
		{"id":"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f71","action":"viewed"},
		{"id":"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f71","action":"viewed"}
	]}`
	r := f.do("POST", "/v1/events/batch", f.u1, body).want(http.StatusOK)
	var out struct {
		Items []struct {
			Index  int              `json:"index"`
			Status int              `json:"status"`
			Event  *eventDoc        `json:"event"`
			Error  *json.RawMessage `json:"error"`
		} `json:"items"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		status int
		fields []string
	}{
		{201, nil},
		{422, []string{"events[1].action"}},
		{403, nil},
		{200, nil},
		{409, []string{"events[4].id"}},
		{422, []string{"events[5].user_id", "events[5].occurred_at"}},
		{201, nil},
		{200, nil}, // same id and content as the item before it
	}
	if len(out.Items) != len(want) {
		t.Fatalf("%d items, want %d: %s", len(out.Items), len(want), r.body)
	}
	for i, w := range want {
		it := out.Items[i]
		if it.Index != i || it.Status != w.status {
			t.Errorf("item %d: index %d status %d, want status %d", i, it.Index, it.Status, w.status)
		}
		if w.status < 300 {
			if it.Event == nil || it.Error != nil {
				t.Errorf("item %d: want an event and no error", i)
				continue
			}
			checkEvent(t, *it.Event)
			continue
		}
		if it.Error == nil || it.Event != nil {
			t.Errorf("item %d: want an error and no event", i)
			continue
		}
		var p problemDoc
		if err := json.Unmarshal(*it.Error, &p); err != nil || p.Status != w.status || p.Type == "" || p.Detail == "" {
			t.Errorf("item %d: error %s is not a problem with status %d", i, *it.Error, w.status)
		}
		if w.fields != nil && !slices.Equal(p.fields(), w.fields) {
			t.Errorf("item %d: blames %q, want %q", i, p.fields(), w.fields)
		}
	}
	if e := out.Items[3].Event; e != nil && !reflect.DeepEqual(*e, existing) {
		t.Errorf("retried item returned %+v, want the stored %+v", *e, existing)
	}
	if n := len(f.storedEvents()); n != 3 {
		t.Errorf("store holds %d events, want 3", n)
	}

	// A token that may not write is refused the whole batch.
	f.do("POST", "/v1/events/batch", f.u1ro, `{"events":[{"action":"login"},{"action":"logout"}]}`).want(http.StatusForbidden)
	// An admin may write for any user.
	r = f.do("POST", "/v1/events/batch", f.admin, `{"events":[{"user_id":7,"action":"login"},{"user_id":8,"action":"logout"}]}`).want(http.StatusOK)
	if strings.Count(string(r.body), `"status":201`) != 2 {
		t.Errorf("admin batch: %s", r.body)
	}
}

func TestBatchErrors(t *testing.T) {
	many := func(n int) string {
		return `{"events":[` + strings.TrimSuffix(strings.Repeat(`{"action":"login"},`, n), ",") + `]}`
	}
	tests := []struct {
		name   string
		body   string
		header map[string]string
		code   int
		fields []string
	}{
		{name: "empty batch", body: `{"events":[]}`, code: 422, fields: []string{"events"}},
		{name: "no events", body: `{}`, code: 422, fields: []string{"events"}},
		{name: "null events", body: `{"events":null}`, code: 422, fields: []string{"events"}},
		{name: "too many", body: many(1001), code: 422, fields: []string{"events"}},
		{name: "events not an array", body: `{"events":{"action":"login"}}`, code: 400, fields: []string{"events"}},
		{name: "unknown top-level field", body: `{"events":[{"action":"login"}],"atomic":true}`, code: 400, fields: []string{"atomic"}},
		{name: "unknown item field", body: `{"events":[{"action":"login"},{"action":"login"},{"action":"login"},{"action":"login","foo":1}]}`,
			code: 400, fields: []string{"events[3].foo"}},
		{name: "item not an object", body: `{"events":[1,{"action":"login"}]}`, code: 400, fields: []string{"events[0]"}},
		{name: "item wrong type", body: `{"events":[{"action":"login"},{"user_id":"2","action":"login"}]}`, code: 400, fields: []string{"events[1].user_id"}},
		{name: "item duplicate field", body: `{"events":[{"action":"login","action":"login"}]}`, code: 400, fields: []string{"events[0].action"}},
		{name: "array body", body: `[{"action":"login"}]`, code: 400},
		{name: "trailing data", body: `{"events":[{"action":"login"}]}{}`, code: 400},
		{name: "malformed", body: `{"events":[{"action":"login"}`, code: 400},
		{name: "Idempotency-Key", body: many(1), header: map[string]string{"Idempotency-Key": "x"}, code: 400, fields: []string{"Idempotency-Key"}},
		{name: "wrong content type", body: many(1), header: map[string]string{"Content-Type": "text/csv"}, code: 415},
		{name: "too large", body: many(60000), code: 413},
	}
	f := newFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.t = t
			r := f.serve(request{method: "POST", path: "/v1/events/batch", token: f.u1, body: tt.body, header: tt.header})
			p := r.problem(tt.code)
			if tt.fields != nil && !slices.Equal(p.fields(), tt.fields) {
				t.Errorf("problem blames %q, want %q", p.fields(), tt.fields)
			}
		})
	}
	f.t = t
	if n := len(f.storedEvents()); n != 0 {
		t.Errorf("store holds %d events after rejected batches", n)
	}
	// Exactly the maximum is accepted.
	f.do("POST", "/v1/events/batch", f.u1, many(1000)).want(http.StatusOK)
	if n := len(f.storedEvents()); n != 1000 {
		t.Errorf("store holds %d events, want 1000", n)
	}
}

func TestGetEvent(t *testing.T) {
	f := newFixture(t)
	e := f.create(f.u1, `{"action":"upload_file","metadata":{"size":10}}`)
	f.do("PATCH", "/v1/events/"+e.ID, f.u2, `{"status":"IN_PROGRESS"}`).problem(404)
	f.do("PATCH", "/v1/events/"+e.ID, f.u1, `{"status":"IN_PROGRESS"}`).want(200)
	f.do("PATCH", "/v1/events/"+e.ID, f.admin, `{"status":"DONE"}`).want(200)

	got := f.do("GET", "/v1/events/"+e.ID, f.u1ro, "").want(200).event()
	if got.ID != e.ID || got.Status != "DONE" || string(got.Metadata) != `{"size":10}` {
		t.Errorf("got %+v", got)
	}
	h := got.StatusHistory
	if len(h) != 3 {
		t.Fatalf("status_history %+v, want 3 entries", h)
	}
	if h[0].From != nil || h[0].To != "PENDING" || h[0].At != e.RecordedAt || !strings.HasPrefix(h[0].By, "token:") {
		t.Errorf("first entry %+v: want from null, to PENDING at recorded_at by the token", h[0])
	}
	if *h[1].From != "PENDING" || h[1].To != "IN_PROGRESS" || *h[2].From != "IN_PROGRESS" || h[2].To != "DONE" {
		t.Errorf("history %+v", h)
	}
	if h[1].By == h[2].By {
		t.Errorf("two principals recorded as %q", h[1].By)
	}
	if got.UpdatedAt != h[2].At {
		t.Errorf("updated_at %s, want the last transition's %s", got.UpdatedAt, h[2].At)
	}
	// Upper-case UUIDs name the same event.
	f.do("GET", "/v1/events/"+strings.ToUpper(e.ID), f.u1, "").want(200)

	tests := []struct {
		name, path, token string
		code              int
	}{
		{"not a UUID", "/v1/events/42", f.u1, 404},
		{"almost a UUID", "/v1/events/" + e.ID[:35] + "g", f.u1, 404},
		{"escaped garbage", "/v1/events/%00%ff", f.u1, 404},
		{"unknown UUID", "/v1/events/0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70", f.u1, 404},
		{"another user's event", "/v1/events/" + e.ID, f.u2, 404},
		{"write-only token", "/v1/events/" + e.ID, f.u1wo, 403},
		{"no token", "/v1/events/" + e.ID, "", 401},
		{"query parameter", "/v1/events/" + e.ID + "?fields=id", f.u1, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.t = t
			f.do("GET", tt.path, tt.token, "").problem(tt.code)
		})
	}
}

func TestPatchEvent(t *testing.T) {
	f := newFixture(t)
	e := f.create(f.u1, `{"action":"upload_file"}`)
	path := "/v1/events/" + e.ID

	got := f.do("PATCH", path, f.u1, `{"status":"IN_PROGRESS"}`).want(200).event()
	if got.Status != "IN_PROGRESS" || got.UpdatedAt == e.UpdatedAt || got.RecordedAt != e.RecordedAt {
		t.Errorf("after IN_PROGRESS: %+v", got)
	}
	r := f.serve(request{method: "PATCH", path: path, token: f.u1, body: `{"status":"DONE"}`,
		header: map[string]string{"Content-Type": "application/merge-patch+json"}})
	if got = r.want(200).event(); got.Status != "DONE" {
		t.Errorf("after DONE: %+v", got)
	}
	p := f.do("PATCH", path, f.u1, `{"status":"PENDING"}`).problem(409)
	if !strings.Contains(p.Detail, "invalid status transition: DONE -> PENDING") || !p.blames("status") {
		t.Errorf("invalid transition problem %+v", p)
	}

	fresh := f.create(f.u1, `{"action":"upload_file"}`)
	other := f.create(f.u2, `{"action":"upload_file"}`)
	tests := []struct {
		name, path, token, body string
		header                  map[string]string
		code                    int
		fields                  []string
	}{
		{name: "skip a state", path: "/v1/events/" + fresh.ID, body: `{"status":"DONE"}`, code: 409, fields: []string{"status"}},
		{name: "same to same", path: "/v1/events/" + fresh.ID, body: `{"status":"PENDING"}`, code: 409, fields: []string{"status"}},
		{name: "bad status", path: "/v1/events/" + fresh.ID, body: `{"status":"in_progress"}`, code: 422, fields: []string{"status"}},
		{name: "missing status", path: "/v1/events/" + fresh.ID, body: `{}`, code: 422, fields: []string{"status"}},
		{name: "number status", path: "/v1/events/" + fresh.ID, body: `{"status":1}`, code: 400, fields: []string{"status"}},
		{name: "unknown field", path: "/v1/events/" + fresh.ID, body: `{"status":"IN_PROGRESS","note":"x"}`, code: 400, fields: []string{"note"}},
		{name: "array body", path: "/v1/events/" + fresh.ID, body: `["IN_PROGRESS"]`, code: 400},
		{name: "trailing data", path: "/v1/events/" + fresh.ID, body: `{"status":"IN_PROGRESS"}"x"`, code: 400},
		{name: "empty body", path: "/v1/events/" + fresh.ID, body: ``, code: 400},
		{name: "wrong content type", path: "/v1/events/" + fresh.ID, body: `{"status":"IN_PROGRESS"}`,
			header: map[string]string{"Content-Type": "text/plain"}, code: 415},
		{name: "not a UUID", path: "/v1/events/nope", body: `{"status":"IN_PROGRESS"}`, code: 404},
		{name: "unknown UUID", path: "/v1/events/0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70", body: `{"status":"IN_PROGRESS"}`, code: 404},
		{name: "another user's event", path: "/v1/events/" + other.ID, body: `{"status":"IN_PROGRESS"}`, code: 404},
		{name: "read-only token", path: "/v1/events/" + fresh.ID, token: f.u1ro, body: `{"status":"IN_PROGRESS"}`, code: 403},
		{name: "query parameter", path: "/v1/events/" + fresh.ID + "?force=1", body: `{"status":"IN_PROGRESS"}`, code: 400, fields: []string{"force"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.t = t
			token := tt.token
			if token == "" {
				token = f.u1
			}
			p := f.serve(request{method: "PATCH", path: tt.path, token: token, body: tt.body, header: tt.header}).problem(tt.code)
			if tt.fields != nil && !slices.Equal(p.fields(), tt.fields) {
				t.Errorf("problem blames %q, want %q", p.fields(), tt.fields)
			}
		})
	}
	f.t = t
	// None of that changed anything.
	for _, ev := range []eventDoc{fresh, other} {
		if got := f.do("GET", "/v1/events/"+ev.ID, f.admin, "").event(); got.Status != "PENDING" || len(got.StatusHistory) != 1 {
			t.Errorf("event %s changed: %+v", ev.ID, got)
		}
	}
}

// TestPatchRace: of concurrent requests for one transition exactly one
// wins; the others get 409.
func TestPatchRace(t *testing.T) {
	f := newFixture(t)
	e := f.create(f.u1, `{"action":"upload_file"}`)
	const n = 16
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			codes[i] = f.do("PATCH", "/v1/events/"+e.ID, f.u1, `{"status":"IN_PROGRESS"}`).code
		})
	}
	wg.Wait()
	won := 0
	for _, c := range codes {
		switch c {
		case 200:
			won++
		case 409:
		default:
			t.Errorf("status %d, want 200 or 409", c)
		}
	}
	if won != 1 {
		t.Errorf("%d requests won, want 1", won)
	}
	if h := f.do("GET", "/v1/events/"+e.ID, f.u1, "").event().StatusHistory; len(h) != 2 {
		t.Errorf("history %+v, want 2 entries", h)
	}
}

func TestList(t *testing.T) {
	f := newFixture(t)
	// user 1: login, logout, viewed (IN_PROGRESS), upload_file (occurred long ago)
	login := f.create(f.u1, `{"action":"login"}`)
	logout := f.create(f.u1, `{"action":"logout"}`)
	viewed := f.create(f.u1, `{"action":"viewed"}`)
	f.do("PATCH", "/v1/events/"+viewed.ID, f.u1, `{"status":"IN_PROGRESS"}`).want(200)
	upload := f.create(f.u1, `{"action":"upload_file","occurred_at":"2020-01-01T00:00:00Z"}`)
	other := f.create(f.u2, `{"action":"login"}`)

	ids := func(l listDoc) []string {
		out := make([]string, len(l.Items))
		for i, e := range l.Items {
			out[i] = e.ID
		}
		return out
	}
	tests := []struct {
		name, query, token string
		want               []eventDoc
	}{
		{"own events, newest first", "", f.u1, []eventDoc{upload, viewed, logout, login}},
		{"admin sees every user", "", f.admin, []eventDoc{other, upload, viewed, logout, login}},
		{"admin names a user", "?user_id=2", f.admin, []eventDoc{other}},
		{"own user named", "?user_id=1", f.u1, []eventDoc{upload, viewed, logout, login}},
		{"one action", "?action=login", f.u1, []eventDoc{login}},
		{"repeated action", "?action=login&action=LOGOUT", f.u1, []eventDoc{logout, login}},
		{"comma-separated actions", "?action=login,%20viewed", f.u1, []eventDoc{viewed, login}},
		{"unknown but well-formed action", "?action=dance", f.u1, []eventDoc{}},
		{"status", "?status=IN_PROGRESS", f.u1, []eventDoc{viewed}},
		{"oldest first", "?order=asc", f.u1, []eventDoc{login, logout, viewed, upload}},
		{"limit", "?limit=2", f.u1, []eventDoc{upload, viewed}},
		{"half-open range", "?from=" + logout.RecordedAt + "&to=" + upload.RecordedAt, f.u1, []eventDoc{viewed, logout}},
		{"occurred_at range", "?time_field=occurred_at&to=2021-01-01T00:00:00Z", f.u1, []eventDoc{upload}},
		{"occurred_at order", "?time_field=occurred_at&order=asc", f.u1, []eventDoc{upload, login, logout, viewed}},
		{"empty parameters are not sent", "?status=&limit=&action=", f.u1, []eventDoc{upload, viewed, logout, login}},
		{"offset in a URL-encoded from", "?from=" + strings.Replace(logout.RecordedAt, "Z", "%2B00:00", 1), f.u1,
			[]eventDoc{upload, viewed, logout}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.t = t
			l := f.do("GET", "/v1/events"+tt.query, tt.token, "").list()
			want := make([]string, len(tt.want))
			for i, e := range tt.want {
				want[i] = e.ID
			}
			if got := ids(l); !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
			if l.NextCursor != nil && tt.name != "limit" {
				t.Errorf("next_cursor %q on the only page", *l.NextCursor)
			}
		})
	}
	f.t = t
	// The user route lists the same.
	l := f.do("GET", "/v1/users/1/events?action=login", f.u1, "").list()
	if !slices.Equal(ids(l), []string{login.ID}) {
		t.Errorf("/v1/users/1/events: %v", ids(l))
	}
	l = f.do("GET", "/v1/users/2/events", f.admin, "").list()
	if !slices.Equal(ids(l), []string{other.ID}) {
		t.Errorf("/v1/users/2/events as admin: %v", ids(l))
	}
	if string(f.do("GET", "/v1/events?user_id=3", f.admin, "").want(200).body) != `{"items":[],"next_cursor":null}`+"\n" {
		t.Error("an empty list is not {\"items\":[],\"next_cursor\":null}")
	}
}

func TestListErrors(t *testing.T) {
	f := newFixture(t)
	f.create(f.u1, `{"action":"login"}`)
	asc := f.do("GET", "/v1/events?order=asc&limit=1", f.u1, "").list()
	desc := f.do("GET", "/v1/events?limit=1", f.u1, "").list()
	if asc.NextCursor != nil || desc.NextCursor != nil {
		t.Fatal("one event, yet a next page")
	}
	f.create(f.u1, `{"action":"login"}`)
	desc = f.do("GET", "/v1/events?limit=1", f.u1, "").list()
	if desc.NextCursor == nil {
		t.Fatal("no next_cursor")
	}
	cursor := *desc.NextCursor

	tests := []struct {
		name, path string
		token      string // "" → user 1
		code       int
		fields     []string
	}{
		{name: "unknown parameter", path: "/v1/events?user=1", code: 400, fields: []string{"user"}},
		{name: "unknown parameters", path: "/v1/events?b=1&a=2&limit=3", code: 400, fields: []string{"a", "b"}},
		{name: "repeated limit", path: "/v1/events?limit=1&limit=2", code: 400, fields: []string{"limit"}},
		{name: "repeated user_id", path: "/v1/events?user_id=1&user_id=2", code: 400, fields: []string{"user_id"}},
		{name: "malformed escape", path: "/v1/events?action=%zz", code: 400},
		{name: "semicolon", path: "/v1/events?limit=1;user_id=2", code: 400},
		{name: "user_id not a number", path: "/v1/events?user_id=abc", code: 422, fields: []string{"user_id"}},
		{name: "user_id fractional", path: "/v1/events?user_id=1.5", code: 422, fields: []string{"user_id"}},
		{name: "user_id zero", path: "/v1/events?user_id=0", code: 422, fields: []string{"user_id"}},
		{name: "user_id negative", path: "/v1/events?user_id=-1", code: 422, fields: []string{"user_id"}},
		{name: "user_id huge", path: "/v1/events?user_id=99999999999999999999", code: 422, fields: []string{"user_id"}},
		{name: "ill-formed action", path: "/v1/events?action=log%20in", code: 422, fields: []string{"action"}},
		{name: "too many actions", path: "/v1/events?action=" + strings.Repeat("a,", 101), code: 422, fields: []string{"action"}},
		{name: "bad status", path: "/v1/events?status=done", code: 422, fields: []string{"status"}},
		{name: "bad from", path: "/v1/events?from=yesterday", code: 422, fields: []string{"from"}},
		{name: "unencoded plus", path: "/v1/events?to=2025-06-01T00:00:00+02:00", code: 422, fields: []string{"to"}},
		{name: "from after to", path: "/v1/events?from=2025-06-02T00:00:00Z&to=2025-06-01T00:00:00Z", code: 422, fields: []string{"from"}},
		{name: "bad time_field", path: "/v1/events?time_field=updated_at", code: 422, fields: []string{"time_field"}},
		{name: "bad order", path: "/v1/events?order=random", code: 422, fields: []string{"order"}},
		{name: "limit zero", path: "/v1/events?limit=0", code: 422, fields: []string{"limit"}},
		{name: "limit too large", path: "/v1/events?limit=1001", code: 422, fields: []string{"limit"}},
		{name: "limit not a number", path: "/v1/events?limit=ten", code: 422, fields: []string{"limit"}},
		{name: "bad cursor", path: "/v1/events?cursor=garbage", code: 422, fields: []string{"cursor"}},
		{name: "truncated cursor", path: "/v1/events?cursor=" + cursor[:len(cursor)-2], code: 422, fields: []string{"cursor"}},
		{name: "cursor for another order", path: "/v1/events?order=asc&cursor=" + cursor, code: 422, fields: []string{"cursor"}},
		{name: "several bad values", path: "/v1/events?limit=0&order=x&status=y", code: 422, fields: []string{"status", "order", "limit"}},
		{name: "other user", path: "/v1/events?user_id=2", code: 403},
		{name: "other user's route", path: "/v1/users/2/events", code: 403},
		{name: "write-only token", path: "/v1/events", token: "wo", code: 403},
		{name: "no token", path: "/v1/events", token: "none", code: 401},
		{name: "user route: not a number", path: "/v1/users/abc/events", code: 404},
		{name: "user route: zero", path: "/v1/users/0/events", code: 404},
		{name: "user route: negative", path: "/v1/users/-1/events", code: 404},
		{name: "user route: leading zero", path: "/v1/users/01/events", code: 404},
		{name: "user route: huge", path: "/v1/users/99999999999999999999/events", code: 404},
		{name: "user route: escaped", path: "/v1/users/%31/events", code: 404},
		{name: "user route: empty", path: "/v1/users//events", code: 404},
		{name: "user route: user_id parameter", path: "/v1/users/1/events?user_id=1", code: 400, fields: []string{"user_id"}},
		{name: "user route: bad limit", path: "/v1/users/1/events?limit=-5", code: 422, fields: []string{"limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.t = t
			token := map[string]string{"": f.u1, "wo": f.u1wo, "none": ""}[tt.token]
			r := f.do("GET", tt.path, token, "")
			p := r.problem(tt.code)
			if tt.fields != nil && !slices.Equal(p.fields(), tt.fields) {
				t.Errorf("problem blames %q, want %q: %s", p.fields(), tt.fields, r.body)
			}
		})
	}
}

// TestOwnership: without admin, a principal acts only on its own user.
func TestOwnership(t *testing.T) {
	f := newFixture(t)
	mine := f.create(f.u1, `{"action":"login"}`)
	theirs := f.create(f.u2, `{"action":"login"}`)

	p := f.do("GET", "/v1/events?user_id=2", f.u1, "").problem(403)
	if !strings.Contains(p.Detail, "user 1") {
		t.Errorf("403 detail %q does not say whom the credential acts for", p.Detail)
	}
	f.do("GET", "/v1/users/2/events", f.u1, "").problem(403)
	f.do("GET", "/v1/events/"+theirs.ID, f.u1, "").problem(404)
	f.do("PATCH", "/v1/events/"+theirs.ID, f.u1, `{"status":"IN_PROGRESS"}`).problem(404)
	f.do("POST", "/v1/events", f.u1, `{"user_id":2,"action":"login"}`).problem(403)

	l := f.do("GET", "/v1/events", f.u1, "").list()
	if len(l.Items) != 1 || l.Items[0].ID != mine.ID {
		t.Errorf("user 1's default list: %+v", l.Items)
	}
	l = f.do("GET", "/v1/events", f.u2, "").list()
	if len(l.Items) != 1 || l.Items[0].ID != theirs.ID {
		t.Errorf("user 2's default list: %+v", l.Items)
	}
	if got := f.do("GET", "/v1/events/"+theirs.ID, f.u2, "").event(); got.Status != "PENDING" {
		t.Errorf("user 2's event changed: %+v", got)
	}
	if len(f.do("GET", "/v1/events", f.admin, "").list().Items) != 2 {
		t.Error("admin does not see both users")
	}
}

// TestPaging walks every page through next_cursor, in both orders and on
// both time fields.
func TestPaging(t *testing.T) {
	f := newFixture(t)
	const n = 23
	body := `{"events":[`
	for i := range n {
		if i > 0 {
			body += ","
		}
		// occurred_at runs backwards, so the two time fields order differently.
		body += fmt.Sprintf(`{"action":"viewed","occurred_at":"2025-05-01T00:00:%02dZ","metadata":{"i":%d}}`, 59-i, i)
	}
	f.do("POST", "/v1/events/batch", f.u1, body+"]}").want(200)
	f.create(f.u2, `{"action":"viewed"}`) // not user 1's

	for _, tc := range []struct {
		query string
		want  func(i int) int // i-th result's metadata index
	}{
		{"", func(i int) int { return n - 1 - i }},
		{"order=asc&", func(i int) int { return i }},
		{"time_field=occurred_at&", func(i int) int { return i }},
		{"time_field=occurred_at&order=asc&", func(i int) int { return n - 1 - i }},
	} {
		t.Run(tc.query, func(t *testing.T) {
			f.t = t
			var got []eventDoc
			path := "/v1/events?" + tc.query + "limit=5"
			pages := 0
			for {
				l := f.do("GET", path, f.u1, "").list()
				pages++
				got = append(got, l.Items...)
				if l.NextCursor == nil {
					break
				}
				if pages > n {
					t.Fatal("paging does not end")
				}
				path = "/v1/events?" + tc.query + "limit=5&cursor=" + *l.NextCursor
			}
			if pages != 5 || len(got) != n {
				t.Fatalf("%d events on %d pages, want %d on 5", len(got), pages, n)
			}
			for i, e := range got {
				var md struct{ I int }
				if err := json.Unmarshal(e.Metadata, &md); err != nil || md.I != tc.want(i) || e.UserID != 1 {
					t.Errorf("item %d: %s (user %d), want i=%d", i, e.Metadata, e.UserID, tc.want(i))
				}
			}
		})
	}
	f.t = t
	// The user route pages the same way.
	l := f.do("GET", "/v1/users/1/events?limit=20", f.u1, "").list()
	if l.NextCursor == nil || len(l.Items) != 20 {
		t.Fatalf("first page: %d items", len(l.Items))
	}
	l = f.do("GET", "/v1/users/1/events?limit=20&cursor="+*l.NextCursor, f.u1, "").list()
	if l.NextCursor != nil || len(l.Items) != 3 {
		t.Errorf("second page: %d items, next %v", len(l.Items), l.NextCursor)
	}
}
