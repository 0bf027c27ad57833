package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// TestCompatHostileInput is TestHostileInput for the predecessors'
// surfaces: malformed input to every one of their routes never produces a
// 5xx, every error is a problem document (carrying the event-tracking
// surface's error/details members there), and no rejected request leaves
// a row behind or changes one. Unlike /v1, these surfaces ignore unknown
// members and query parameters, so some hostile requests are accepted: a
// GET that ignores a parameter, or a POST /api/logs/ whose action is
// valid and whose other members are ignored. Each accepted write is
// checked and accounted for.
func TestCompatHostileInput(t *testing.T) { compatHostile(t, memoryStore) }

func compatHostile(t *testing.T, newStore newStoreFunc) {
	cf := newCompatFixture(t, newStore)
	cf.skipRequestCheck = true // malformed on purpose: only the responses are checked against the document
	u1 := cf.user(1)
	seeded := cf.call("POST", "/api/logs/", u1, `{"action":"login"}`).logEntry(http.StatusCreated)
	before := compatSnapshot(t, cf.st)
	accepted := map[string]bool{} // ids of events hostile requests created
	sent := 0
	send := func(rq request, principalUser int64) {
		t.Helper()
		sent++
		compatHostileResult(t, cf.serve(rq), principalUser, accepted)
	}

	writeRoutes := []struct{ method, path string }{
		{"POST", "/api/event"}, {"POST", "/api/event/"},
		{"POST", "/api/logs/"}, {"POST", "/api/logs"},
		{"PATCH", "/api/logs/update/" + seeded.ID.String() + "/"}, {"PATCH", "/api/logs/update/" + seeded.ID.String()},
		{"PATCH", "/api/logs/update/not-an-id/"},
	}
	readRoutes := []string{"/api/events", "/api/events/", "/api/logs/1", "/api/logs/1/"}
	for _, who := range []struct {
		token string
		user  int64
	}{{u1, 1}, {cf.admin, 0}} {
		auth := map[string]string{"Authorization": "Token " + who.token}
		with := func(h map[string]string) map[string]string {
			out := map[string]string{"Authorization": auth["Authorization"]}
			for k, v := range h {
				out[k] = v
			}
			return out
		}
		for _, body := range append(hostileBodies(), trackingHostileBodies()...) {
			for _, rt := range writeRoutes {
				send(request{method: rt.method, path: rt.path, body: body, header: auth}, who.user)
			}
		}
		for _, ct := range hostileContentTypes {
			for _, rq := range []request{
				{method: "POST", path: "/api/event", body: trackingBody("user_id", "1")},
				{method: "POST", path: "/api/logs/", body: `{"action":"login"}`},
				{method: "PATCH", path: "/api/logs/update/" + seeded.ID.String() + "/", body: `{"status":"IN_PROGRESS"}`},
			} {
				rq.header = with(map[string]string{"Content-Type": ct})
				send(rq, who.user)
			}
		}
		for _, seg := range hostileSegments {
			send(request{method: "GET", path: "/api/logs/" + seg, header: auth}, who.user)
			send(request{method: "GET", path: "/api/logs/" + seg + "/", header: auth}, who.user)
			send(request{method: "PATCH", path: "/api/logs/update/" + seg + "/", body: `{"status":"DONE"}`, header: auth}, who.user)
			send(request{method: "PATCH", path: "/api/logs/update/" + seg, body: `{"status":"IN_PROGRESS","x":1}`, header: auth}, who.user)
			send(request{method: "GET", path: "/api/events?user_id=" + seg, header: auth}, who.user)
		}
		for _, q := range append(hostileQueries(), compatHostileQueries()...) {
			for _, p := range readRoutes {
				send(request{method: "GET", path: p + "?" + q, header: auth}, who.user)
			}
			send(request{method: "POST", path: "/api/event?" + q, body: trackingBody("user_id", "0"), header: auth}, who.user)
			send(request{method: "PATCH", path: "/api/logs/update/" + seeded.ID.String() + "/?" + q, body: `{"status":"DONE"}`, header: auth}, who.user)
		}
	}
	// Bad credentials, on every route.
	for _, a := range []string{"", "Token", "Token \x00", "Token " + strings.Repeat("x", 10000), "Basic Og==", "Token " + u1 + "x",
		"Bearer a.b.c", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "Token 💥", "Token\t" + u1} {
		for _, rq := range []request{
			{method: "POST", path: "/api/event", body: trackingBody("user_id", "1")},
			{method: "GET", path: "/api/events"},
			{method: "POST", path: "/api/logs/", body: `{"action":"login"}`},
			{method: "GET", path: "/api/logs/1/"},
			{method: "PATCH", path: "/api/logs/update/" + seeded.ID.String() + "/", body: `{"status":"IN_PROGRESS"}`},
		} {
			rq.header = map[string]string{"Authorization": a}
			send(rq, -1)
		}
	}
	// Near misses of the routes, with every method.
	for _, p := range []string{"/api", "/api/", "/api/log", "/api/logs/update", "/api/logs/update/", "/api/logs//", "/api/logs/1/x",
		"/API/LOGS/", "/api/events/x", "/api/event/x", "/api//event", "/api/logs/update/x/y", "/api/logs%2F1"} {
		for _, m := range []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"} {
			send(request{method: m, path: p, body: `{"status":"IN_PROGRESS"}`, header: map[string]string{"Authorization": "Token " + u1}}, 1)
		}
	}

	after := compatSnapshot(t, cf.st)
	for id, e := range after.events {
		if _, old := before.events[id]; !old && !accepted[id] {
			t.Errorf("event %s (%+v) was stored by a request that was not answered 2xx", id, e)
		}
	}
	for id, e := range before.events {
		if !reflect.DeepEqual(after.events[id], e) || !reflect.DeepEqual(after.history[id], before.history[id]) {
			t.Errorf("event %s changed:\nbefore %+v %+v\nafter  %+v %+v", id, e, before.history[id], after.events[id], after.history[id])
		}
	}
	if len(after.events) != len(before.events)+len(accepted) {
		t.Errorf("store holds %d events, want %d + %d accepted", len(after.events), len(before.events), len(accepted))
	}
	t.Logf("%d hostile requests, %d accepted writes", sent, len(accepted))
}

// trackingHostileBodies are POST /api/event bodies for user 1 with one
// member wrong each.
func trackingHostileBodies() []string {
	var out []string
	for _, c := range []struct{ name, value string }{
		{"user_id", ""}, {"user_id", "null"}, {"user_id", `"1"`}, {"user_id", "0"}, {"user_id", "-1"}, {"user_id", "1.5"},
		{"user_id", "1e999"}, {"user_id", "9223372036854775808"}, {"user_id", "[1]"}, {"user_id", "true"},
		{"event_action_timestamp", ""}, {"event_action_timestamp", "null"}, {"event_action_timestamp", `""`},
		{"event_action_timestamp", "1760121000"}, {"event_action_timestamp", `"2999-01-01T00:00:00Z"`},
		{"event_action_timestamp", `"0000-01-01T00:00:00Z"`}, {"event_action_timestamp", `"2025-10-10T18:30:00Z\u0000"`},
		{"action", ""}, {"action", "null"}, {"action", `"DELETE"`}, {"action", `"deleted\u0000"`}, {"action", `"ｄｅｌｅｔｅｄ"`},
		{"action", `["deleted"]`}, {"metadata", ""}, {"metadata", "null"}, {"metadata", `"{}"`}, {"metadata", "[]"},
		{"metadata", `{"a":"\u0000"}`}, {"metadata", `{"a":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`},
	} {
		body := trackingBody(c.name, c.value)
		out = append(out, strings.Replace(body, `"user_id":6`, `"user_id":1`, 1))
	}
	return append(out,
		trackingBody("user_id", "1")+trackingBody("user_id", "1"),
		`{"user_id":1,"user_id":1,"event_action_timestamp":"2025-10-10T18:30:00Z","action":"deleted","metadata":{}}`,
	)
}

// compatHostileQueries are query strings aimed at the predecessors'
// parameters.
func compatHostileQueries() []string {
	return []string{
		"user_id=1&user_id=1", "from=x", "to=x", "from=2025-10-02T00:00:00Z&to=2025-10-01T00:00:00Z", "limit=-2", "limit=0",
		"limit=1001", "limit=-1&limit=-1", "offset=-1", "offset=1e3", "offset=99999999999", "offset=%00", "offset=1&offset=2",
		"start=x", "end=2025-02-30", "start=2025-11-02&end=2025-11-01", "start=1&from=1", "end=1&to=1", "start=2025-11-01&start=2025-11-01",
		"action=LOG%20IN", "action=LOGIN&action=LOGOUT", "action=%00", "start=" + strings.Repeat("9", 10000),
		"to=9999-12-31T23:59:59.999999999Z", "from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z", "start=0000-01-01",
		"end=9999-12-31", "offset=1000000000", "limit=1000&offset=1000000000",
	}
}

// compatHostileResult checks one answer: never a 5xx; an error is a
// problem document (with error and details on the event-tracking
// routes); a success has its route's shape, and a recorded log belongs to
// the principal. principalUser is the principal's user (0 for the admin,
// -1 when the credentials are bad).
func compatHostileResult(t *testing.T, r *response, principalUser int64, accepted map[string]bool) {
	t.Helper()
	desc := func() string {
		return fmt.Sprintf("%s %.120s (body %.120q, headers %.200q)", r.req.method, r.req.path, r.req.body, r.req.header)
	}
	path, _, _ := strings.Cut(r.req.path, "?")
	tracking := path == "/api/event" || path == "/api/event/" || path == "/api/events" || path == "/api/events/"
	switch {
	case r.code >= 500:
		t.Errorf("%s → %d: %s", desc(), r.code, r.body)
	case r.code >= 400:
		if _, err := r.problemErr(); err != nil {
			t.Errorf("%s → %d: %v: %.300s", desc(), r.code, err, r.body)
			return
		}
		if tracking && r.code != http.StatusMethodNotAllowed {
			var m struct {
				Error   *string `json:"error"`
				Details *string `json:"details"`
			}
			if err := json.Unmarshal(r.body, &m); err != nil || m.Error == nil || m.Details == nil || *m.Error == "" || *m.Details == "" {
				t.Errorf("%s → %d without error/details: %.300s", desc(), r.code, r.body)
			}
		}
	case r.req.method == "GET" && r.code == 200:
		var items []map[string]json.RawMessage
		if err := json.Unmarshal(r.body, &items); err != nil || items == nil {
			t.Errorf("%s → 200, not a JSON array: %.300s", desc(), r.body)
		}
	case r.req.method == "POST" && (path == "/api/logs/" || path == "/api/logs") && r.code == http.StatusCreated && principalUser > 0:
		var l logEntry
		if err := json.Unmarshal(r.body, &l); err != nil || l.User != principalUser || l.Status != "PENDING" || l.Action != strings.ToUpper(l.Action) {
			t.Errorf("%s → 201 with %.300s", desc(), r.body)
			return
		}
		if accepted == nil {
			t.Errorf("%s → 201: a write where none was expected", desc())
			return
		}
		accepted[uuidOf(l.ID.String())] = true
	default:
		t.Errorf("%s → %d: hostile input accepted: %.300s", desc(), r.code, r.body)
	}
}

type compatState struct {
	events  map[string]domain.Event
	history map[string][]domain.Transition
}

func compatSnapshot(t *testing.T, st ports.Store) compatState {
	t.Helper()
	s := compatState{events: map[string]domain.Event{}, history: map[string][]domain.Transition{}}
	for _, e := range storedIn(t, st) {
		h, err := st.History(context.Background(), e.ID)
		if err != nil {
			t.Fatal(err)
		}
		s.events[e.ID.String()], s.history[e.ID.String()] = e, h
	}
	return s
}

// TestCompatHostileInputSQLite runs the same against SQLite (a few seconds).
func TestCompatHostileInputSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	compatHostile(t, sqliteStore)
}

// TestCompatHostileInputPostgres runs the same against PostgreSQL.
func TestCompatHostileInputPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	compatHostile(t, pgStore)
}
