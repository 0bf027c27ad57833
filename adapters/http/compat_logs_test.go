package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/activityd/activityd/adapters/auth"
	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/domain"
)

// The activity-logger surface (docs/compat.md, "Activity-logger surface"), tested the way a client of
// the Django REST predecessor uses it: "Authorization: Token <token>",
// bodies and paths as its README showed them.

func TestActivityLoggerSurface(t *testing.T)         { loggerSuite(t, memoryStore) }
func TestActivityLoggerSurfaceSQLite(t *testing.T)   { loggerSuite(t, sqliteStore) }
func TestActivityLoggerSurfacePostgres(t *testing.T) { loggerSuite(t, pgStore) }

// logsExample is compat.md's request body, verbatim.
const logsExample = `{"action": "LOGIN", "metadata": {"ip": "192.168.0.1", "device": "Chrome"}}`

// logEntry is a log as the surface renders it.
type logEntry struct {
	ID        wireID          `json:"id"`
	User      int64           `json:"user"`
	Action    string          `json:"action"`
	Timestamp string          `json:"timestamp"`
	Metadata  json.RawMessage `json:"metadata"`
	Status    string          `json:"status"`
}

var logKeys = []string{"id", "user", "action", "timestamp", "metadata", "status"}

func checkLog(t testing.TB, what string, raw []byte) logEntry {
	t.Helper()
	var l logEntry
	exactObject(t, what, raw, &l, logKeys...)
	if n, err := strconv.ParseInt(l.ID.String(), 10, 64); err == nil {
		if !l.ID.number || n < 1 {
			t.Errorf("%s: id %s is not a positive JSON integer", what, l.ID.String())
		}
	} else if _, err := domain.ParseID(l.ID.String()); err != nil || l.ID.number {
		t.Errorf("%s: id %s is neither a log number nor a UUID string", what, l.ID.String())
	}
	if !isRFC3339UTC(l.Timestamp) || l.User <= 0 || len(l.Metadata) == 0 || l.Metadata[0] != '{' {
		t.Errorf("%s: malformed log %s", what, raw)
	}
	if l.Action != strings.ToUpper(l.Action) {
		t.Errorf("%s: action %q is not upper case", what, l.Action)
	}
	if !slices.Contains([]string{"PENDING", "IN_PROGRESS", "DONE"}, l.Status) {
		t.Errorf("%s: status %q", what, l.Status)
	}
	return l
}

// logEntry decodes a response holding one log, with status code.
func (r *response) logEntry(code int) logEntry {
	r.t.Helper()
	r.want(code)
	if ct := r.hdr.Get("Content-Type"); ct != "application/json" {
		r.t.Fatalf("%s: Content-Type %q", r, ct)
	}
	return checkLog(r.t, r.String(), r.body)
}

func (r *response) logEntries() []logEntry {
	r.t.Helper()
	items := r.jsonArray()
	out := make([]logEntry, len(items))
	for i, raw := range items {
		out[i] = checkLog(r.t, fmt.Sprintf("%s: item %d", r, i), raw)
	}
	return out
}

// wireID is a log id as sent: a JSON integer (a log number) or a string
// (a UUID), kept as its text.
type wireID struct {
	text   string
	number bool
}

func (id *wireID) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		id.number = false
		return json.Unmarshal(b, &id.text)
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	id.text, id.number = n.String(), true
	return nil
}

func (id wireID) String() string { return id.text }

func logIDs(ls []logEntry) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = uuidOf(l.ID.String())
	}
	return out
}

// logsProblem checks a problem document and returns it with its members.
func (r *response) logsProblem(code int) (problemDoc, map[string]json.RawMessage) {
	r.t.Helper()
	return r.problemExt(code)
}

// drf returns DRF's {"field":["message", ...]} member for field.
func drf(t testing.TB, m map[string]json.RawMessage, field string) []string {
	t.Helper()
	raw, ok := m[field]
	if !ok {
		t.Fatalf("no DRF member %q in %v", field, keysOf(m))
	}
	var msgs []string
	if err := json.Unmarshal(raw, &msgs); err != nil || len(msgs) == 0 {
		t.Fatalf("DRF member %q is %s, not a list of messages", field, raw)
	}
	return msgs
}

// patchError checks a 400 of the PATCH route and its error member.
func (r *response) patchError(code int, want string) {
	r.t.Helper()
	_, m := r.logsProblem(code)
	if got := stringMemberOf(r.t, m, "error"); got != want {
		r.t.Errorf("%s: error %q, want %q", r, got, want)
	}
}

// jwtSecret is the HS256 secret of the JWT test (≥ 32 bytes).
var jwtSecret = []byte("compat-test-secret-0123456789abcdef")

// withJWT authenticates with auth.Chain(HS256 JWT, API tokens), as
// cmd/activityd does when JWT_SECRET is set.
func withJWT(t *testing.T) compatOption {
	return func(cfg *httpapi.Config, cf *compatFixture) {
		j, err := auth.NewJWT(context.Background(), auth.JWTConfig{Secret: jwtSecret})
		if err != nil {
			t.Fatalf("NewJWT: %v", err)
		}
		t.Cleanup(j.Close)
		cfg.Auth = auth.Chain(j, cf.fixture.tokens)
	}
}

func signJWT(t testing.TB, secret []byte, sub, scope string) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "scope": scope, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	s, err := tok.SignedString(secret)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func loggerSuite(t *testing.T, newStore newStoreFunc) {
	t.Run("record and read back the compat.md example", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u1 := cf.user(1)
		if r := cf.call("GET", "/api/logs/1/", u1, ""); r.code != 200 || strings.TrimSpace(string(r.body)) != "[]" {
			t.Fatalf("empty list: %s, want 200 []", r)
		}
		l := cf.call("POST", "/api/logs/", u1, logsExample).logEntry(http.StatusCreated)
		stored := cf.get(l.ID.String())
		if l.User != 1 || l.Action != "LOGIN" || l.Status != "PENDING" || l.Timestamp != domain.FormatTime(stored.RecordedAt) {
			t.Errorf("created %+v; stored %+v", l, stored)
		}
		if !sameJSON(t, l.Metadata, `{"ip": "192.168.0.1", "device": "Chrome"}`) {
			t.Errorf("metadata %s", l.Metadata)
		}
		for _, path := range []string{"/api/logs/1", "/api/logs/1/"} {
			ls := cf.call("GET", path, u1, "").logEntries()
			if len(ls) != 1 || ls[0].ID.String() != l.ID.String() || ls[0].Timestamp != l.Timestamp || ls[0].Action != "LOGIN" || ls[0].Status != "PENDING" ||
				ls[0].User != 1 || !sameJSON(t, ls[0].Metadata, string(l.Metadata)) {
				t.Errorf("GET %s: %+v, want [%+v]", path, ls, l)
			}
		}
	})

	t.Run("id, user, timestamp, status and unknown members are ignored", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		id := "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70"
		body := `{"id":"` + id + `","user":2,"timestamp":"2001-01-01T00:00:00Z","status":"DONE",` +
			`"action":"logout","metadata":{"k":"v"},"comment":"x","user_id":2}`
		l := cf.call("POST", "/api/logs/?format=json", cf.user(1), body).logEntry(http.StatusCreated)
		if uuidOf(l.ID.String()) == id || l.User != 1 || l.Status != "PENDING" || l.Timestamp == "2001-01-01T00:00:00Z" || l.Action != "LOGOUT" {
			t.Errorf("created %+v", l)
		}
		if es := cf.stored(); len(es) != 1 || es[0].UserID != 1 {
			t.Errorf("stored %+v", es)
		}
		// metadata is optional.
		l = cf.call("POST", "/api/logs", cf.user(1), `{"action":"viewed"}`).logEntry(http.StatusCreated)
		if string(l.Metadata) != "{}" {
			t.Errorf("metadata %s, want {}", l.Metadata)
		}
	})

	t.Run("actions are upper case whatever the client sent", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u1 := cf.user(1)
		sent := []string{"login", "Upload_File", "LOGOUT", "deleted"}
		want := []string{"LOGIN", "UPLOAD_FILE", "LOGOUT", "DELETED"}
		for i, a := range sent {
			if l := cf.call("POST", "/api/logs/", u1, `{"action":"`+a+`"}`).logEntry(http.StatusCreated); l.Action != want[i] {
				t.Errorf("sent %q, answered %q", a, l.Action)
			}
		}
		var got []string
		for _, l := range cf.call("GET", "/api/logs/1/", u1, "").logEntries() {
			got = append(got, l.Action)
		}
		if !slices.Equal(got, want) {
			t.Errorf("listed %q, want %q", got, want)
		}
		// The event-tracking surface shows the same events in lower case.
		var lower []string
		for _, e := range cf.do("GET", "/api/events", u1, "").trackingEvents() {
			lower = append(lower, e.Action)
		}
		if !slices.Equal(lower, []string{"login", "upload_file", "logout", "deleted"}) {
			t.Errorf("/api/events lists %q", lower)
		}
	})

	t.Run("the action filter is case-insensitive", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u1 := cf.user(1)
		var logins []string
		for _, a := range []string{"LOGIN", "logout", "login", "UPLOAD_FILE", "Login"} {
			l := cf.call("POST", "/api/logs/", u1, `{"action":"`+a+`"}`).logEntry(http.StatusCreated)
			if l.Action == "LOGIN" {
				logins = append(logins, uuidOf(l.ID.String()))
			}
		}
		for _, q := range []string{"LOGIN", "login", "LoGiN"} {
			if got := logIDs(cf.call("GET", "/api/logs/1?action="+q, u1, "").logEntries()); !slices.Equal(got, logins) {
				t.Errorf("action=%s: %q, want %q", q, got, logins)
			}
		}
		if got := cf.call("GET", "/api/logs/1?action=DANCE", u1, "").logEntries(); len(got) != 0 {
			t.Errorf("action=DANCE: %d logs", len(got))
		}
		_, m := cf.call("GET", "/api/logs/1?action=LOG%20IN", u1, "").logsProblem(http.StatusBadRequest)
		drf(t, m, "action")
	})

	t.Run("start and end are inclusive; from and to and dates too", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u1 := cf.user(1)
		var ids, at []string
		for range 3 {
			l := cf.call("POST", "/api/logs/", u1, logsExample).logEntry(http.StatusCreated)
			ids, at = append(ids, uuidOf(l.ID.String())), append(at, l.Timestamp)
		}
		plus2 := func(s string) string {
			tm, _ := time.Parse(time.RFC3339Nano, s)
			return url.QueryEscape(tm.In(time.FixedZone("", 2*3600)).Format(time.RFC3339Nano))
		}
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"start=" + at[0] + "&end=" + at[2], ids},
			{"start=" + at[1] + "&end=" + at[1], ids[1:2]},
			{"start=" + at[0] + "&end=" + at[1], ids[:2]},
			{"start=" + at[1], ids[1:]},
			{"end=" + at[1], ids[:2]},
			{"from=" + at[1] + "&to=" + at[2], ids[1:]},
			{"from=" + at[2] + "&end=" + at[2], ids[2:]},
			{"start=" + plus2(at[1]) + "&end=" + plus2(at[1]), ids[1:2]},
			{"start=2025-11-01&end=2025-11-01", ids}, // compatT0's day, all of it
			{"start=2025-11-01", ids},
			{"end=2025-11-01", ids},
			{"end=2025-10-31", nil},
			{"start=2025-11-02", nil},
			{"start=2025-10-31&end=2025-10-31", nil},
		} {
			got := logIDs(cf.call("GET", "/api/logs/1?"+tc.query, u1, "").logEntries())
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: %q, want %q", tc.query, got, tc.want)
			}
		}
	})

	t.Run("bad dates are 400, not 500", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u1 := cf.user(1)
		cf.call("POST", "/api/logs/", u1, logsExample).logEntry(http.StatusCreated)
		for _, tc := range []struct {
			query, field string
		}{
			{"start=yesterday", "start"},
			{"end=2025-13-01", "end"},
			{"end=2025-02-30", "end"},
			{"from=not-a-date", "from"},
			{"to=2025-10-10T25:00:00Z", "to"},
			{"start=2025-10-10T10:00:00+02:00", "start"}, // '+' not encoded: a space
			{"start=2025-10-10%2010:00:00", "start"},
			{"start=2025-11-02&end=2025-11-01", "start"},
			{"start=2025-11-01T10:00:00Z&end=2025-11-01T09:59:59.999999Z", "start"},
			{"start=2025-11-01&from=2025-11-01", "start"},
			{"end=2025-11-01&to=2025-11-01", "end"},
			{"start=1&start=2", "start"},
		} {
			r := cf.call("GET", "/api/logs/1?"+tc.query, u1, "")
			p, m := r.logsProblem(http.StatusBadRequest)
			if !p.blames(tc.field) {
				t.Errorf("%s: blames %q, want %s", tc.query, p.fields(), tc.field)
			}
			drf(t, m, tc.field)
		}
		r := cf.call("GET", "/api/logs/1?start=2025-11-02&end=2025-11-01", u1, "")
		if _, m := r.logsProblem(400); !strings.Contains(drf(t, m, "start")[0], "after end") {
			t.Errorf("start after end: %s", r.body)
		}
	})

	t.Run("limit and offset: at most 1000, stable paging", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u1 := cf.user(1)
		// 1001 logs, the first 1000 at one instant (ties).
		cf.clock.SetStep(0)
		var b strings.Builder
		b.WriteString(`{"events":[`)
		for i := range 1000 {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`{"action":"login"}`)
		}
		cf.call("POST", "/v1/events/batch", u1, b.String()+"]}").want(200)
		cf.clock.SetStep(time.Millisecond)
		cf.call("POST", "/api/logs/", u1, logsExample).logEntry(http.StatusCreated)
		want := sortedByRecorded(cf.stored())

		if got := logIDs(cf.call("GET", "/api/logs/1/", u1, "").logEntries()); !slices.Equal(got, want[:1000]) {
			t.Errorf("default page: %d logs, not the first 1000 in order", len(got))
		}
		if got := logIDs(cf.call("GET", "/api/logs/1/?offset=1000", u1, "").logEntries()); !slices.Equal(got, want[1000:]) {
			t.Errorf("offset 1000: %q", got)
		}
		var got []string
		for offset := 0; ; offset += 333 {
			page := logIDs(cf.call("GET", fmt.Sprintf("/api/logs/1?limit=333&offset=%d", offset), u1, "").logEntries())
			got = append(got, page...)
			if len(page) < 333 {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("paged %d logs, want every one of %d exactly once, in order", len(got), len(want))
		}
		for _, q := range []string{"limit=1001", "limit=0", "limit=-1", "limit=x", "offset=-1", "offset=x"} {
			_, m := cf.call("GET", "/api/logs/1?"+q, u1, "").logsProblem(http.StatusBadRequest)
			drf(t, m, strings.Split(q, "=")[0])
		}
	})

	t.Run("a read right after a POST or PATCH sees it", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u1 := cf.user(1)
		if n := len(cf.call("GET", "/api/logs/1/", u1, "").logEntries()); n != 0 {
			t.Fatalf("%d logs before any write", n)
		}
		l := cf.call("POST", "/api/logs/", u1, logsExample).logEntry(http.StatusCreated)
		if ls := cf.call("GET", "/api/logs/1/", u1, ""); len(ls.logEntries()) != 1 {
			t.Fatalf("after POST: %s", ls)
		}
		for _, st := range []string{"IN_PROGRESS", "DONE"} {
			cf.call("PATCH", "/api/logs/update/"+l.ID.String()+"/", u1, `{"status":"`+st+`"}`).logEntry(http.StatusOK)
			ls := cf.call("GET", "/api/logs/1/", u1, "").logEntries()
			if len(ls) != 1 || ls[0].Status != st {
				t.Errorf("after PATCH to %s: %+v", st, ls)
			}
			if v1 := cf.call("GET", "/v1/events/"+uuidOf(l.ID.String()), u1, "").want(200).event(); v1.Status != st {
				t.Errorf("/v1 after PATCH to %s: %s", st, v1.Status)
			}
		}
	})

	t.Run("PATCH follows the workflow", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u1 := cf.user(1)
		l := cf.call("POST", "/api/logs/", u1, logsExample).logEntry(http.StatusCreated)
		path := "/api/logs/update/" + l.ID.String() + "/"

		// Forbidden moves from PENDING.
		cf.call("PATCH", path, u1, `{"status":"DONE"}`).patchError(400, "Invalid status transition: PENDING -> DONE")
		cf.call("PATCH", path, u1, `{"status":"PENDING"}`).patchError(400, "Invalid status transition: PENDING -> PENDING")

		p := cf.call("PATCH", path, u1, `{"status": "IN_PROGRESS"}`).logEntry(http.StatusOK)
		if p.ID.String() != l.ID.String() || p.User != 1 || p.Action != "LOGIN" || p.Timestamp != l.Timestamp || p.Status != "IN_PROGRESS" ||
			!sameJSON(t, p.Metadata, string(l.Metadata)) {
			t.Errorf("PATCH answered %+v, want the whole log %+v moved to IN_PROGRESS", p, l)
		}
		cf.call("PATCH", path, u1, `{"status":"IN_PROGRESS"}`).patchError(400, "Invalid status transition: IN_PROGRESS -> IN_PROGRESS")
		// Without the trailing slash (the predecessor answered 500).
		if p := cf.call("PATCH", strings.TrimSuffix(path, "/"), u1, `{"status":"DONE"}`).logEntry(http.StatusOK); p.Status != "DONE" {
			t.Errorf("status %s", p.Status)
		}
		// The bug the predecessor had: going back.
		cf.call("PATCH", path, u1, `{"status":"PENDING"}`).patchError(400, "Invalid status transition: DONE -> PENDING")
		cf.call("PATCH", path, u1, `{"status":"IN_PROGRESS"}`).patchError(400, "Invalid status transition: DONE -> IN_PROGRESS")
		if e := cf.get(l.ID.String()); e.Status != domain.StatusDone {
			t.Errorf("stored status %s after rejected moves", e.Status)
		}
		h, err := cf.st.History(context.Background(), cf.get(l.ID.String()).ID)
		if err != nil || len(h) != 3 {
			t.Errorf("history %+v, %v: want 3 entries", h, err)
		}
	})

	t.Run("PATCH: invalid status, unknown log, PUT", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u1, u2 := cf.user(1), cf.user(2)
		l := cf.call("POST", "/api/logs/", u1, logsExample).logEntry(http.StatusCreated)
		path := "/api/logs/update/" + l.ID.String() + "/"
		for _, body := range []string{`{}`, `{"status":null}`, `{"status":""}`, `{"status":"CANCELLED"}`, `{"status":"in_progress"}`,
			`{"status":"IN_PROGRESS "}`, `{"status":1}`, `{"status":["IN_PROGRESS"]}`, `{"status":{"to":"DONE"}}`, `{"action":"LOGOUT"}`} {
			cf.call("PATCH", path, u1, body).patchError(400, "Invalid status")
			cf.call("PATCH", "/api/logs/update/"+domain.NewID(time.Now()).String()+"/", u1, body).patchError(400, "Invalid status")
		}
		for _, body := range []string{`{"status":`, `[]`, `"IN_PROGRESS"`, `{"status":"IN_PROGRESS"} x`, `{"status":"DONE","status":"DONE"}`, ``} {
			cf.call("PATCH", path, u1, body).patchError(400, "Invalid request body")
		}
		// Unknown, malformed and another user's ids are 404.
		for _, id := range []string{domain.NewID(time.Now()).String(), "42", "not-an-id"} {
			cf.call("PATCH", "/api/logs/update/"+id+"/", u1, `{"status":"IN_PROGRESS"}`).logsProblem(http.StatusNotFound)
			cf.call("PATCH", "/api/logs/update/"+id, u1, `{"status":"IN_PROGRESS"}`).logsProblem(http.StatusNotFound)
		}
		cf.call("PATCH", path, u2, `{"status":"IN_PROGRESS"}`).logsProblem(http.StatusNotFound)
		cf.call("PATCH", path, cf.user(1, domain.ScopeRead), `{"status":"IN_PROGRESS"}`).logsProblem(http.StatusForbidden)
		// PUT, which could rewrite the action, is not offered.
		for _, m := range []string{"PUT", "DELETE", "POST", "GET"} {
			for _, p := range []string{path, strings.TrimSuffix(path, "/")} {
				r := cf.call(m, p, u1, `{"action":"LOGOUT","status":"IN_PROGRESS"}`)
				r.problem(http.StatusMethodNotAllowed)
				if got := r.hdr.Values("Allow"); !slices.Equal(got, []string{"PATCH"}) {
					t.Errorf("%s %s: Allow %q", m, p, got)
				}
			}
		}
		if e := cf.get(l.ID.String()); e.Status != domain.StatusPending || e.Action != "login" {
			t.Errorf("stored %+v after rejected requests", e)
		}
		// An admin may move any user's log; a lost race would be a 409.
		if p := cf.call("PATCH", path, cf.admin, `{"status":"IN_PROGRESS"}`).logEntry(http.StatusOK); p.Status != "IN_PROGRESS" || p.User != 1 {
			t.Errorf("admin PATCH: %+v", p)
		}
	})

	t.Run("concurrent PATCHes: one wins, the others lose cleanly", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u1 := cf.user(1)
		l := cf.call("POST", "/api/logs/", u1, logsExample).logEntry(http.StatusCreated)
		const n = 8
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rq := request{method: "PATCH", path: "/api/logs/update/" + l.ID.String() + "/", body: `{"status":"IN_PROGRESS"}`,
					header: map[string]string{"Authorization": "Token " + u1}}
				codes[i] = cf.serveQuiet(rq)
			}()
		}
		wg.Wait()
		ok := 0
		for _, c := range codes {
			switch c {
			case 200:
				ok++
			case 400, 409: // saw IN_PROGRESS already, or lost the compare-and-set
			default:
				t.Errorf("status %d", c)
			}
		}
		if ok != 1 {
			t.Errorf("%d PATCHes won (%v), want exactly 1", ok, codes)
		}
	})

	t.Run("a non-admin reads and changes only its own logs", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u1, u2 := cf.user(1), cf.user(2)
		l1 := cf.call("POST", "/api/logs/", u1, logsExample).logEntry(http.StatusCreated)
		l2 := cf.call("POST", "/api/logs/", u2, logsExample).logEntry(http.StatusCreated)
		if l2.User != 2 {
			t.Errorf("user 2's log belongs to %d", l2.User)
		}
		cf.call("GET", "/api/logs/1", u2, "").logsProblem(http.StatusForbidden)
		cf.call("GET", "/api/logs/2/", u1, "").logsProblem(http.StatusForbidden)
		cf.call("PATCH", "/api/logs/update/"+l1.ID.String()+"/", u2, `{"status":"IN_PROGRESS"}`).logsProblem(http.StatusNotFound)
		if got := logIDs(cf.call("GET", "/api/logs/1", u1, "").logEntries()); !slices.Equal(got, []string{uuidOf(l1.ID.String())}) {
			t.Errorf("user 1 sees %q", got)
		}
		// An admin reads anyone's logs.
		if got := logIDs(cf.call("GET", "/api/logs/2", cf.admin, "").logEntries()); !slices.Equal(got, []string{uuidOf(l2.ID.String())}) {
			t.Errorf("admin sees %q", got)
		}
		// Scopes: read-only may not record; write-only may not read.
		cf.call("POST", "/api/logs/", cf.user(1, domain.ScopeRead), logsExample).logsProblem(http.StatusForbidden)
		cf.call("POST", "/api/logs/", cf.user(1, domain.ScopeRead), `{"action":"dance"}`).logsProblem(http.StatusForbidden)
		cf.call("GET", "/api/logs/1", cf.user(1, domain.ScopeWrite), "").logsProblem(http.StatusForbidden)
		cf.call("GET", "/api/logs/1", cf.user(1, domain.ScopeRead), "").logEntries()
		if e := cf.get(l1.ID.String()); e.Status != domain.StatusPending {
			t.Errorf("user 1's log changed to %s", e.Status)
		}
	})

	t.Run("an admin credential bound to no user cannot record a log", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		p, m := cf.call("POST", "/api/logs/", cf.admin, logsExample).logsProblem(http.StatusBadRequest)
		if !p.blames("user") || !strings.Contains(drf(t, m, "user")[0], "bound to no user") {
			t.Errorf("problem %+v", p)
		}
		if n := len(cf.stored()); n != 0 {
			t.Errorf("stored %d events", n)
		}
	})

	t.Run("errors are 400 with DRF's members", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u1 := cf.user(1)
		for _, tc := range []struct {
			name, body, field string
		}{
			{"no action", `{"metadata":{}}`, "action"},
			{"empty object", `{}`, "action"},
			{"null action", `{"action":null}`, "action"},
			{"empty action", `{"action":""}`, "action"},
			{"unknown action", `{"action":"DANCE"}`, "action"},
			{"ill-formed action", `{"action":"LOG IN"}`, "action"},
			{"number action", `{"action":7}`, "action"},
			{"array metadata", `{"action":"LOGIN","metadata":["x"]}`, "metadata"},
			{"string metadata", `{"action":"LOGIN","metadata":"{}"}`, "metadata"},
			{"huge metadata", `{"action":"LOGIN","metadata":{"a":"` + strings.Repeat("x", 20000) + `"}}`, "metadata"},
			{"array body", `[` + logsExample + `]`, "non_field_errors"},
			{"duplicate member", `{"action":"LOGIN","action":"LOGOUT"}`, "action"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cf.t = t
				_, m := cf.call("POST", "/api/logs/", u1, tc.body).logsProblem(http.StatusBadRequest)
				drf(t, m, tc.field)
			})
		}
		cf.t = t
		for _, body := range []string{`{"action":`, `{"action":"LOGIN"} x`, ``, "{\"action\":\"LOG\xffIN\"}"} {
			p, _ := cf.call("POST", "/api/logs/", u1, body).logsProblem(http.StatusBadRequest)
			if p.Detail == "" {
				t.Errorf("%q: no detail", body)
			}
		}
		cf.call("POST", "/api/logs/", u1, `{"action":"LOGIN","metadata":{"a":"`+strings.Repeat("x", 1<<20)+`"}}`).logsProblem(http.StatusRequestEntityTooLarge)
		// Forms are taken too (compat_forms_test.go), but not as JSON text.
		for _, ct := range []string{"application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
			cf.call("POST", "/api/logs/", u1, logsExample, "Content-Type", ct).logsProblem(http.StatusBadRequest)
		}
		for _, ct := range []string{"text/plain", ""} {
			cf.call("POST", "/api/logs/", u1, logsExample, "Content-Type", ct).logsProblem(http.StatusUnsupportedMediaType)
		}
		for _, a := range []string{"", "Token", "Token nope", "Token " + u1 + "x", "Basic dTpw"} {
			r := cf.serve(request{method: "POST", path: "/api/logs/", body: logsExample, header: map[string]string{"Authorization": a}})
			p, _ := r.logsProblem(http.StatusUnauthorized)
			if r.hdr.Get("WWW-Authenticate") == "" || p.Detail == "" {
				t.Errorf("%q: %s", a, r)
			}
			r = cf.serve(request{method: "GET", path: "/api/logs/1/", header: map[string]string{"Authorization": a}})
			r.logsProblem(http.StatusUnauthorized)
		}
		if n := len(cf.stored()); n != 0 {
			t.Errorf("rejected requests stored %d events", n)
		}
	})

	t.Run("user ids beyond 32 bits; malformed user ids are 404", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		big := cf.user(3000000000)
		l := cf.call("POST", "/api/logs/", big, logsExample).logEntry(http.StatusCreated)
		if l.User != 3000000000 {
			t.Errorf("user %d", l.User)
		}
		for _, tok := range []string{big, cf.admin} {
			if got := logIDs(cf.call("GET", "/api/logs/3000000000/", tok, "").logEntries()); !slices.Equal(got, []string{uuidOf(l.ID.String())}) {
				t.Errorf("listed %q", got)
			}
		}
		for _, seg := range []string{"abc", "0", "-1", "01", "+1", "1.0", "99999999999999999999", "%00"} {
			cf.call("GET", "/api/logs/"+seg+"/", cf.admin, "").logsProblem(http.StatusNotFound)
			cf.call("GET", "/api/logs/"+seg, cf.admin, "").logsProblem(http.StatusNotFound)
		}
	})

	t.Run("Bearer JWT works as well as Token", func(t *testing.T) {
		cf := newCompatFixture(t, newStore, withJWT(t))
		bearer := func(method, path, tok, body string) *response {
			return cf.serve(request{method: method, path: path, body: body, header: map[string]string{"Authorization": "Bearer " + tok}})
		}
		jwt5 := signJWT(t, jwtSecret, "5", "events:read events:write")
		l := bearer("POST", "/api/logs/", jwt5, logsExample).logEntry(http.StatusCreated)
		if l.User != 5 || l.Action != "LOGIN" {
			t.Errorf("created %+v", l)
		}
		if got := logIDs(bearer("GET", "/api/logs/5/", jwt5, "").logEntries()); !slices.Equal(got, []string{uuidOf(l.ID.String())}) {
			t.Errorf("listed %q", got)
		}
		if p := bearer("PATCH", "/api/logs/update/"+l.ID.String()+"/", jwt5, `{"status":"IN_PROGRESS"}`).logEntry(http.StatusOK); p.Status != "IN_PROGRESS" {
			t.Errorf("PATCH: %+v", p)
		}
		bearer("GET", "/api/logs/1/", jwt5, "").logsProblem(http.StatusForbidden)
		bearer("GET", "/api/logs/5/", signJWT(t, []byte("another-secret-another-secret-another"), "5", "events:read"), "").logsProblem(http.StatusUnauthorized)
		bearer("POST", "/api/logs/", signJWT(t, jwtSecret, "5", "events:read"), logsExample).logsProblem(http.StatusForbidden)
		// API tokens still work through the chain, with either scheme.
		cf.call("POST", "/api/logs/", cf.user(5), logsExample).logEntry(http.StatusCreated)
		if n := len(bearer("GET", "/api/logs/5", cf.user(5), "").logEntries()); n != 2 {
			t.Errorf("listed %d logs, want 2", n)
		}
	})

	t.Run("both surfaces and /v1 share one store", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u6 := cf.user(6)
		ev := cf.do("POST", "/api/event", u6, trackingExample).trackingCreated()
		lg := cf.call("POST", "/api/logs/", u6, logsExample).logEntry(http.StatusCreated)
		ls := cf.call("GET", "/api/logs/6", u6, "").logEntries()
		if len(ls) != 2 || ls[0].ID.String() != ev.ID || ls[0].Action != "DELETED" || ls[0].Timestamp != ev.CreatedAt || ls[1].ID.String() != lg.ID.String() {
			t.Errorf("/api/logs/6: %+v", ls)
		}
		es := cf.do("GET", "/api/events", u6, "").trackingEvents()
		if len(es) != 2 || es[1].ID != uuidOf(lg.ID.String()) || es[1].Action != "login" || es[1].Timestamp != lg.Timestamp {
			t.Errorf("/api/events: %+v", es)
		}
		if l := cf.do("GET", "/v1/users/6/events", u6, "").list(); len(l.Items) != 2 {
			t.Errorf("/v1: %d events", len(l.Items))
		}
	})
}

// serveQuiet serves a request from any goroutine and returns its status.
func (cf *compatFixture) serveQuiet(rq request) int {
	req := newRawRequest(rq.method, rq.path, rq.body)
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	return cf.serveRaw(req).code
}
