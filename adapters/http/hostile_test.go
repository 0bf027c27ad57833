package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/activityd/activityd/domain"
)

// hostileBodies are request bodies no write route may accept: each is
// malformed, mistyped or breaks a rule for POST /v1/events, PATCH
// /v1/events/{id} and POST /v1/events/batch alike.
func hostileBodies() []string {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	manyFields := func(n int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"f%d":%d`, i, i)
		}
		return b.String() + "}"
	}
	return []string{
		// Not JSON, or not one JSON value.
		" ", "\n\t", "{", "}", "[", "]", `"`, "nul", "tru", "-", "1.", ".5", "0x10", "NaN", "Infinity",
		"action=login", "<xml/>", "\x00", "\x00{}", "{}\x00", "\xef\xbb\xbf{}", "\xff\xfe{\x00}\x00",
		`{"action":"login"`, `{"action":"login",}`, `{"action":"login"}x`, `{"action":"login"}]`,
		`{"action":"login"}}`, `{"action":"login"}{"action":"login"}`, `{} {}`, `{}[]`, `{"a":1}//`,
		`{'action':'login'}`, `{action:"login"}`, `{"action":"login" "user_id":1}`, `{"action":"\x"}`,
		`{"action":"login\`, "{\"action\":\"lo\ngin\"}", "{\"action\":\"login\xc3\x28\"}", "{\"\xff\":1}",
		// JSON, but not an object.
		"null", "true", "false", "0", "-1", "1e999", `"login"`, `""`, "[]", `[{"action":"login"}]`, `[null]`,
		// Unknown, duplicated or mis-cased fields.
		`{"foo":1}`, `{"ACTION":"login"}`, `{"Status":"DONE"}`, `{"action":"login","action":"login"}`,
		`{"status":"IN_PROGRESS","status":"IN_PROGRESS"}`, `{"":""}`, `{"💥":"💥"}`, `{"\u0000":1}`,
		`{"action":"login","status":"DONE"}`, `{"events":[],"extra":1}`, manyFields(2000),
		// Wrong JSON types.
		`{"user_id":"1","action":"login"}`, `{"user_id":[1],"action":"login"}`, `{"user_id":{},"action":"login"}`,
		`{"user_id":true,"action":"login"}`, `{"action":1}`, `{"action":["login"]}`, `{"action":{"login":1}}`,
		`{"action":true}`, `{"action":"login","occurred_at":1700000000}`, `{"action":"login","occurred_at":[]}`,
		`{"action":"login","id":7}`, `{"action":"login","id":{}}`, `{"status":1}`, `{"status":["DONE"]}`,
		`{"status":{"to":"DONE"}}`, `{"status":true}`, `{"events":{}}`, `{"events":"[]"}`, `{"events":1}`,
		// Values that break a rule.
		`{}`, `{"action":null}`, `{"action":""}`, `{"action":"dance"}`, `{"action":"log in"}`,
		`{"action":"` + strings.Repeat("a", 100000) + `"}`, `{"action":"login","user_id":0}`,
		`{"action":"login","user_id":-1}`, `{"action":"login","user_id":-0}`, `{"action":"login","user_id":1.5}`,
		`{"action":"login","user_id":1e3}`, `{"action":"login","user_id":1e999}`, `{"action":"login","user_id":1.0}`,
		`{"action":"login","user_id":9223372036854775808}`, `{"action":"login","user_id":-9223372036854775809}`,
		`{"action":"login","metadata":[]}`, `{"action":"login","metadata":"{}"}`, `{"action":"login","metadata":1}`,
		`{"action":"login","metadata":true}`, `{"action":"login","metadata":{"a":"\u0000"}}`,
		`{"action":"login","metadata":{"a\u0000b":1}}`, `{"action":"login","metadata":{"a":["x\u0000"]}}`,
		`{"action":"login","metadata":{"a":"` + strings.Repeat("x", 17000) + `"}}`,
		`{"action":"login","metadata":{"a":` + deep(9000) + `}}`,
		`{"action":"login","occurred_at":""}`, `{"action":"login","occurred_at":"yesterday"}`,
		`{"action":"login","occurred_at":"2025-13-45T99:99:99Z"}`, `{"action":"login","occurred_at":"0000-01-01T00:00:00Z"}`,
		`{"action":"login","occurred_at":"2999-01-01T00:00:00Z"}`, `{"action":"login","occurred_at":"2025-06-01"}`,
		`{"action":"login","occurred_at":"2025-06-01T10:00:00"}`, `{"action":"login","occurred_at":"2025-06-01T10:00:00Z\u0000"}`,
		`{"action":"login","id":""}`, `{"action":"login","id":"../../etc/passwd"}`, `{"action":"login","id":"' OR 1=1 --"}`,
		`{"action":"login","id":"00000000-0000-0000-0000-000000000000"}`, `{"action":"login","id":"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f7g"}`,
		`{"status":""}`, `{"status":null}`, `{"status":"done"}`, `{"status":"DONE\u0000"}`,
		`{"status":"PENDING"}`, `{"status":"CANCELLED"}`, `{"events":[]}`, `{"events":null}`,
		// Unicode garbage.
		`{"action":"ｌｏｇｉｎ"}`, `{"action":"login\u202e"}`, `{"action":"\ud800"}`, `{"action":"\udfff\ud800"}`,
		`{"action":"log\u0000in"}`, `{"action":"lo\u0301gin"}`, `{"action":"💥"}`, `{"action":"ǅ"}`, `{"action":"İ"}`,
		`{"status":"ＤＯＮＥ"}`, `{"status":"DONE\u200b"}`, "{\"action\":\"\xed\xa0\x80\"}", "{\"action\":\"\xc0\xaf\"}",
		// Deep nesting.
		deep(10001), `{"action":"login","metadata":{"a":` + deep(10001) + `}}`, strings.Repeat(`{"a":`, 20000),
		`{"events":[` + deep(10001) + `]}`,
		// Too large.
		`{"action":"login","metadata":{"a":"` + strings.Repeat("x", 2<<20) + `"}}`,
	}
}

// hostileContentTypes are Content-Type headers no body route accepts.
var hostileContentTypes = []string{
	"", "text/plain", "text/json", "application/xml", "application/x-www-form-urlencoded",
	"multipart/form-data; boundary=x", "application/json; charset=utf-16", "application/json; charset=\x00",
	"application/json;;", "json", "*/*", "application/jsonx", "application/json+xml",
}

// hostileSegments are path segments that name no event and no user.
var hostileSegments = []string{
	"x", "%00", "%2e%2e", "..", ".", "%2F", "%252F", strings.Repeat("a", 10000), "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f7g",
	"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70", "00000000-0000-0000-0000-000000000000", "{id}", "%7Bid%7D",
	"'%20OR%201=1%20--", "%F0%9F%92%A5", "%ff%fe", "0", "-1", "+1", "01", "1e3", "0x10", "99999999999999999999",
	"1%00", "1.0", " 1", "%201", "1;2",
}

// hostileQueries are query strings no /v1 route accepts.
func hostileQueries() []string {
	badCursor := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	c := make([]byte, 27)
	c[0] = 2 // unknown version
	c2 := make([]byte, 27)
	c2[0], c2[1] = 1, 7 // bad flag
	return []string{
		"user_id=abc", "user_id=1e3", "user_id=-1", "user_id=0", "user_id=1.0", "user_id=0x1", "user_id=99999999999999999999",
		"user_id=1%00", "user_id=1&user_id=1", "limit=-1", "limit=0", "limit=1e3", "limit=1001", "limit=99999999999",
		"limit=%00", "limit=1&limit=2", "limit=ten", "cursor=garbage", "cursor=AAAA", "cursor=" + badCursor(c),
		"cursor=" + badCursor(c2), "cursor=%ff%fe", "cursor=" + strings.Repeat("A", 100000), "from=yesterday",
		"from=2025-06-02T00:00:00Z&to=2025-06-01T00:00:00Z", "to=2025-06-01T00:00:00+02:00", "from=" + strings.Repeat("9", 10000),
		"%zz", "a;b", "limit=1;user_id=2", "action=%00", "action=LOGIN%0A", "action=" + strings.Repeat("a,", 1000),
		"action=%F0%9F%92%A5", "status=done", "status=PENDING%00", "status=PENDING&status=DONE", "order=ASC", "order=asc%00",
		"time_field=id", "time_field=occurred_at&cursor=garbage", "foo=bar", "USER_ID=1", "user_id[]=1", "&&&=&=",
		strings.Repeat("x=1&", 5000), "%00=1",
	}
}

// hostileResult checks one answer to hostile input: never a 5xx, always a
// problem document whose status is the response's, and for a batch only
// per-item failures.
func hostileResult(t testing.TB, r *response) {
	t.Helper()
	desc := func() string {
		s := fmt.Sprintf("%s %.120s (body %.120q, Content-Type %q)", r.req.method, r.req.path, r.req.body, r.req.header["Content-Type"])
		return s
	}
	switch {
	case r.code >= 500:
		t.Errorf("%s → %d: %s", desc(), r.code, r.body)
	case r.code >= 400:
		if _, err := r.problemErr(); err != nil {
			t.Errorf("%s → %d: %v: %.300s", desc(), r.code, err, r.body)
		}
	case r.req.method == "POST" && strings.HasPrefix(r.req.path, "/v1/events/batch"):
		var out struct {
			Items []struct {
				Status int             `json:"status"`
				Event  json.RawMessage `json:"event"`
				Error  json.RawMessage `json:"error"`
			} `json:"items"`
		}
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Errorf("%s → %d, not a batch result: %v", desc(), r.code, err)
		}
		for i, it := range out.Items {
			if it.Status < 400 || it.Status >= 500 || it.Event != nil || it.Error == nil {
				t.Errorf("%s → item %d accepted or failed badly: %s", desc(), i, r.body)
			}
		}
	default:
		t.Errorf("%s → %d: hostile input accepted: %.300s", desc(), r.code, r.body)
	}
}

// TestHostileInput sends malformed input to every route and checks that
// nothing produces a 5xx, every error is a problem document, and no
// rejected request changes the store.
func TestHostileInput(t *testing.T) {
	f := newFixture(t)
	f.skipRequestCheck = true // malformed on purpose: only the responses are checked against the document
	seeded := f.create(f.u1, `{"action":"login"}`)
	before := snapshot(t, f)

	sent := 0
	send := func(rq request) {
		sent++
		hostileResult(t, f.serve(rq))
	}
	for _, token := range []string{f.u1, f.admin} {
		// Bodies, to every route that takes one.
		bodyRoutes := []struct{ method, path string }{
			{"POST", "/v1/events"},
			{"POST", "/v1/events/batch"},
			{"PATCH", "/v1/events/" + seeded.ID},
			{"PATCH", "/v1/events/not-an-id"},
		}
		for _, body := range hostileBodies() {
			for _, rt := range bodyRoutes {
				send(request{method: rt.method, path: rt.path, token: token, body: body})
			}
			// The same as one item of a batch: 400 for the batch, or a
			// failed item.
			send(request{method: "POST", path: "/v1/events/batch", token: token, body: `{"events":[` + body + `]}`})
			send(request{method: "POST", path: "/v1/events/batch", token: token, body: `{"events":[{"action":"dance"},` + body + `]}`})
		}
		// Valid bodies under a Content-Type no route accepts.
		for _, ct := range hostileContentTypes {
			for _, rq := range []request{
				{method: "POST", path: "/v1/events", body: `{"action":"login"}`},
				{method: "POST", path: "/v1/events/batch", body: `{"events":[{"action":"login"}]}`},
				{method: "PATCH", path: "/v1/events/" + seeded.ID, body: `{"status":"IN_PROGRESS"}`},
			} {
				rq.token, rq.header = token, map[string]string{"Content-Type": ct}
				send(rq)
				rq.header["Idempotency-Key"] = "k"
				send(rq)
			}
		}
		// Bad ids and user ids.
		for _, seg := range hostileSegments {
			send(request{method: "GET", path: "/v1/events/" + seg, token: token})
			send(request{method: "PATCH", path: "/v1/events/" + seg, token: token, body: `{"status":"IN_PROGRESS"}`})
			send(request{method: "GET", path: "/v1/users/" + seg + "/events", token: token})
			send(request{method: "GET", path: "/v1/users/" + seg + "/events/export", token: token})
			send(request{method: "GET", path: "/v1/events/" + seg + "/events", token: token})
		}
		// Bad query strings, on every route.
		for _, q := range hostileQueries() {
			send(request{method: "GET", path: "/v1/events?" + q, token: token})
			send(request{method: "GET", path: "/v1/users/1/events?" + q, token: token})
			send(request{method: "GET", path: "/v1/events/export?" + q, token: token})
			send(request{method: "GET", path: "/v1/users/1/events/export?" + q, token: token})
			send(request{method: "GET", path: "/v1/events/" + seeded.ID + "?" + q, token: token})
			send(request{method: "POST", path: "/v1/events?" + q, token: token, body: `{"action":"login"}`})
			send(request{method: "POST", path: "/v1/events/batch?" + q, token: token, body: `{"events":[{"action":"login"}]}`})
			send(request{method: "PATCH", path: "/v1/events/" + seeded.ID + "?" + q, token: token, body: `{"status":"IN_PROGRESS"}`})
		}
	}
	// Bad credentials, on every route.
	for _, auth := range []string{"", "Bearer", "Bearer \x00", "Token " + strings.Repeat("x", 10000), "Basic Og==",
		"Bearer adt_" + strings.Repeat("A", 43), "Bearer " + f.u1 + "x", "Bearer 💥", "Token\t" + f.u1} {
		for _, rq := range []request{
			{method: "POST", path: "/v1/events", body: `{"action":"login"}`},
			{method: "POST", path: "/v1/events/batch", body: `{"events":[{"action":"login"}]}`},
			{method: "GET", path: "/v1/events"},
			{method: "GET", path: "/v1/events/" + seeded.ID},
			{method: "PATCH", path: "/v1/events/" + seeded.ID, body: `{"status":"IN_PROGRESS"}`},
			{method: "GET", path: "/v1/users/1/events"},
			{method: "GET", path: "/v1/events/export"},
			{method: "GET", path: "/v1/users/1/events/export"},
		} {
			rq.header = map[string]string{"Authorization": auth}
			send(rq)
		}
	}
	// Unknown routes and methods.
	for _, p := range []string{"/", "/v1", "/v1/", "/v1/events/", "/v1/events//x", "/v1//events", "/V1/EVENTS", "/v1/events%2Fbatch",
		"/healthz/x", "/%00", "/v1/users//events", "/.env", "/v1/events/batch/x"} {
		for _, m := range []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"} {
			send(request{method: m, path: p, token: f.admin, body: `{"action":"login"}`})
		}
	}
	// Operational endpoints stay up through all of it.
	f.do("GET", "/healthz", "", "").want(http.StatusOK)
	f.do("GET", "/readyz?x=%zz", "", "").want(http.StatusOK)

	if after := snapshot(t, f); !reflect.DeepEqual(before, after) {
		t.Errorf("hostile input changed the store:\nbefore %+v\nafter  %+v", before, after)
	}
	t.Logf("%d hostile requests", sent)
}

type storeState struct {
	Events  []domain.Event
	History [][]domain.Transition
}

// snapshot is every stored event with its history.
func snapshot(t testing.TB, f *fixture) storeState {
	t.Helper()
	var s storeState
	s.Events = f.storedEvents()
	for _, e := range s.Events {
		h, err := f.store.History(context.Background(), e.ID)
		if err != nil {
			t.Fatal(err)
		}
		s.History = append(s.History, h)
	}
	return s
}
