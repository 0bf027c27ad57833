package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
)

// The event-tracking surface (docs/compat.md, "Event-tracking surface"), tested the way a client of
// the Go/gin predecessor uses it.

func TestEventTrackingSurface(t *testing.T)         { trackingSuite(t, memoryStore) }
func TestEventTrackingSurfaceSQLite(t *testing.T)   { trackingSuite(t, sqliteStore) }
func TestEventTrackingSurfacePostgres(t *testing.T) { trackingSuite(t, pgStore) }

// trackingExample is compat.md's request body, verbatim.
const trackingExample = `{"user_id": 6, "event_action_timestamp": "2025-10-10T18:30:00Z",
 "action": "deleted", "metadata": {"ip": "192.168.1.10", "device": "iPhone 14"}}`

// trackingCreated is the 201 of POST /api/event.
type trackingCreated struct {
	CreatedAt string `json:"createdAt"`
	ID        string `json:"id"`
}

// trackingEvent is one item of GET /api/events.
type trackingEvent struct {
	ID        string          `json:"id"`
	UserID    int64           `json:"user_id"`
	Timestamp string          `json:"event_action_timestamp"`
	Action    string          `json:"action"`
	Metadata  json.RawMessage `json:"metadata"`
}

func (r *response) trackingCreated() trackingCreated {
	r.t.Helper()
	r.want(http.StatusCreated)
	var c trackingCreated
	exactObject(r.t, r.String(), r.body, &c, "createdAt", "id")
	if _, err := domain.ParseID(c.ID); err != nil {
		r.t.Errorf("%s: id is not a UUID", r)
	}
	if !isRFC3339UTC(c.CreatedAt) {
		r.t.Errorf("%s: createdAt is not RFC 3339 UTC", r)
	}
	return c
}

func (r *response) trackingEvents() []trackingEvent {
	r.t.Helper()
	items := r.jsonArray()
	out := make([]trackingEvent, len(items))
	for i, raw := range items {
		exactObject(r.t, fmt.Sprintf("%s: item %d", r, i), raw, &out[i], "id", "user_id", "event_action_timestamp", "action", "metadata")
		if !isRFC3339UTC(out[i].Timestamp) || len(out[i].Metadata) == 0 || out[i].Metadata[0] != '{' {
			r.t.Errorf("%s: item %d malformed: %s", r, i, raw)
		}
	}
	return out
}

func trackingIDs(es []trackingEvent) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// trackingProblem checks a problem document carrying the predecessor's
// {"error","details"} members, and returns it and details.
func (r *response) trackingProblem(code int, errMember string) (problemDoc, string) {
	r.t.Helper()
	p, m := r.problemExt(code)
	if got := stringMemberOf(r.t, m, "error"); got != errMember {
		r.t.Errorf("%s: error %q, want %q", r, got, errMember)
	}
	details := stringMemberOf(r.t, m, "details")
	if details == "" {
		r.t.Errorf("%s: empty details", r)
	}
	return p, details
}

// trackingBody is the example with one member replaced (or removed when
// value is "").
func trackingBody(name, value string) string {
	members := []struct{ name, value string }{
		{"user_id", "6"}, {"event_action_timestamp", `"2025-10-10T18:30:00Z"`},
		{"action", `"deleted"`}, {"metadata", `{"ip":"192.168.1.10","device":"iPhone 14"}`},
	}
	var parts []string
	for _, m := range members {
		v := m.value
		if m.name == name {
			v = value
		}
		if v != "" {
			parts = append(parts, fmt.Sprintf("%q:%s", m.name, v))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func trackingSuite(t *testing.T, newStore newStoreFunc) {
	t.Run("record and read back the compat.md example", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u6 := cf.user(6)
		r := cf.do("GET", "/api/events?user_id=6", u6, "")
		if got := strings.TrimSpace(string(r.body)); r.code != 200 || got != "[]" {
			t.Fatalf("empty list: %s, want 200 []", r)
		}

		c := cf.do("POST", "/api/event", u6, trackingExample).trackingCreated()
		stored := cf.get(c.ID)
		if want := domain.FormatTime(stored.RecordedAt); c.CreatedAt != want {
			t.Errorf("createdAt %s, want the recorded time %s", c.CreatedAt, want)
		}
		if !stored.OccurredAt.Equal(time.Date(2025, 10, 10, 18, 30, 0, 0, time.UTC)) || stored.UserID != 6 ||
			stored.Action != "deleted" || stored.Status != domain.StatusPending {
			t.Errorf("stored %+v", stored)
		}

		es := cf.do("GET", "/api/events?user_id=6", u6, "").trackingEvents()
		if len(es) != 1 {
			t.Fatalf("listed %d events, want 1", len(es))
		}
		e := es[0]
		if e.ID != c.ID || e.UserID != 6 || e.Timestamp != "2025-10-10T18:30:00Z" || e.Action != "deleted" {
			t.Errorf("listed %+v", e)
		}
		if !sameJSON(t, e.Metadata, `{"ip": "192.168.1.10", "device": "iPhone 14"}`) {
			t.Errorf("metadata %s", e.Metadata)
		}
		// The same event through /v1: event_action_timestamp is occurred_at,
		// createdAt is recorded_at.
		v1 := cf.do("GET", "/v1/events/"+c.ID, u6, "").want(200).event()
		if v1.OccurredAt != e.Timestamp || v1.RecordedAt != c.CreatedAt {
			t.Errorf("/v1 view %+v", v1)
		}
	})

	t.Run("a read right after a write sees it", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u6 := cf.user(6)
		var ids []string
		for i := range 3 {
			if n := len(cf.do("GET", "/api/events", u6, "").trackingEvents()); n != i {
				t.Fatalf("before write %d: listed %d events", i, n)
			}
			ids = append(ids, cf.do("POST", "/api/event", u6, trackingExample).trackingCreated().ID)
			if got := trackingIDs(cf.do("GET", "/api/events?user_id=6", u6, "").trackingEvents()); !slices.Equal(got, ids) {
				t.Fatalf("after write %d: listed %q, want %q", i, got, ids)
			}
		}
	})

	t.Run("actions are lower case, validated by the vocabulary", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u6 := cf.user(6)
		for _, a := range []string{"created", "UPDATED", "Viewed", "login"} {
			cf.do("POST", "/api/event", u6, trackingBody("action", `"`+a+`"`)).trackingCreated()
		}
		var got []string
		for _, e := range cf.do("GET", "/api/events", u6, "").trackingEvents() {
			got = append(got, e.Action)
		}
		if want := []string{"created", "updated", "viewed", "login"}; !slices.Equal(got, want) {
			t.Errorf("actions %q, want %q", got, want)
		}
	})

	t.Run("validation failures", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		for _, tc := range []struct {
			name, body string
			fields     []string
		}{
			{"empty object", `{}`, []string{"user_id", "action", "event_action_timestamp", "metadata"}},
			{"no user_id", trackingBody("user_id", ""), []string{"user_id"}},
			{"null user_id", trackingBody("user_id", "null"), []string{"user_id"}},
			{"zero user_id", trackingBody("user_id", "0"), []string{"user_id"}},
			{"negative user_id", trackingBody("user_id", "-6"), []string{"user_id"}},
			{"fractional user_id", trackingBody("user_id", "6.5"), []string{"user_id"}},
			{"user_id beyond int64", trackingBody("user_id", "9223372036854775808"), []string{"user_id"}},
			{"no timestamp", trackingBody("event_action_timestamp", ""), []string{"event_action_timestamp"}},
			{"null timestamp", trackingBody("event_action_timestamp", "null"), []string{"event_action_timestamp"}},
			{"empty timestamp", trackingBody("event_action_timestamp", `""`), []string{"event_action_timestamp"}},
			{"timestamp not RFC 3339", trackingBody("event_action_timestamp", `"10/10/2025 18:30"`), []string{"event_action_timestamp"}},
			{"timestamp without zone", trackingBody("event_action_timestamp", `"2025-10-10T18:30:00"`), []string{"event_action_timestamp"}},
			{"date only", trackingBody("event_action_timestamp", `"2025-10-10"`), []string{"event_action_timestamp"}},
			{"timestamp in the future", trackingBody("event_action_timestamp", `"2030-01-01T00:00:00Z"`), []string{"event_action_timestamp"}},
			{"no action", trackingBody("action", ""), []string{"action"}},
			{"null action", trackingBody("action", "null"), []string{"action"}},
			{"empty action", trackingBody("action", `""`), []string{"action"}},
			{"unknown action", trackingBody("action", `"dance"`), []string{"action"}},
			{"ill-formed action", trackingBody("action", `"de leted"`), []string{"action"}},
			{"no metadata", trackingBody("metadata", ""), []string{"metadata"}},
			{"null metadata", trackingBody("metadata", "null"), []string{"metadata"}},
			{"string metadata", trackingBody("metadata", `"ip=192.168.1.10"`), []string{"metadata"}},
			{"array metadata", trackingBody("metadata", `["192.168.1.10"]`), []string{"metadata"}},
			{"number metadata", trackingBody("metadata", `42`), []string{"metadata"}},
			{"everything wrong", `{"user_id":0,"event_action_timestamp":"x","action":"dance","metadata":[]}`,
				[]string{"user_id", "action", "event_action_timestamp", "metadata"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cf.t = t
				r := cf.do("POST", "/api/event", cf.admin, tc.body)
				p, details := r.trackingProblem(http.StatusBadRequest, "Validation failed")
				if !slices.Equal(p.fields(), tc.fields) {
					t.Errorf("problem blames %q, want %q: %s", p.fields(), tc.fields, r.body)
				}
				for _, f := range tc.fields {
					if !strings.Contains(details, f+": ") {
						t.Errorf("details %q do not name %s", details, f)
					}
				}
			})
		}
		cf.t = t
		r := cf.do("POST", "/api/event", cf.admin, trackingBody("metadata", ""))
		if _, details := r.trackingProblem(400, "Validation failed"); details != "metadata: is required and must be a JSON object" {
			t.Errorf("details %q", details)
		}
		if n := len(cf.stored()); n != 0 {
			t.Errorf("rejected requests stored %d events", n)
		}
	})

	t.Run("unreadable bodies", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		for _, tc := range []struct{ name, body string }{
			{"malformed JSON", `{"user_id": 6, "action": `},
			{"empty body", ``},
			{"blank body", " \n "},
			{"array", "[" + trackingExample + "]"},
			{"string", `"deleted"`},
			{"trailing object", trackingExample + trackingExample},
			{"trailing garbage", trackingExample + " x"},
			{"trailing bracket", trackingExample + "]"},
			{"string user_id", trackingBody("user_id", `"6"`)},
			{"number action", trackingBody("action", `3`)},
			{"number timestamp", trackingBody("event_action_timestamp", `1760121000`)},
			{"duplicate member", `{"user_id":6,"user_id":7,"event_action_timestamp":"2025-10-10T18:30:00Z","action":"deleted","metadata":{}}`},
			{"invalid UTF-8", trackingBody("action", "\"del\xffeted\"")},
			{"single quotes", `{'user_id': 6}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cf.t = t
				cf.do("POST", "/api/event", cf.admin, tc.body).trackingProblem(http.StatusBadRequest, "Invalid request body")
			})
		}
		cf.t = t
		// Transport rules as on /v1.
		big := trackingBody("metadata", `{"a":"`+strings.Repeat("x", 1<<20)+`"}`)
		cf.do("POST", "/api/event", cf.admin, big).trackingProblem(http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
			r := cf.serve(request{method: "POST", path: "/api/event", token: cf.admin, body: trackingExample, header: map[string]string{"Content-Type": ct}})
			r.trackingProblem(http.StatusUnsupportedMediaType, "Unsupported Media Type")
		}
		if n := len(cf.stored()); n != 0 {
			t.Errorf("rejected requests stored %d events", n)
		}
	})

	t.Run("unknown members and query parameters are ignored", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		body := `{"user_id":6,"event_action_timestamp":"2025-10-10T18:30:00Z","action":"deleted","metadata":{},` +
			`"id":"not-a-uuid","status":"DONE","createdAt":"2001-01-01T00:00:00Z","extra":[1,2]}`
		c := cf.do("POST", "/api/event?debug=1", cf.user(6), body).trackingCreated()
		if e := cf.get(c.ID); e.Status != domain.StatusPending || e.UserID != 6 || !e.RecordedAt.After(compatT0.Add(-time.Second)) {
			t.Errorf("stored %+v", e)
		}
		if n := len(cf.do("GET", "/api/events?user_id=6&_=1700000000&action=created", cf.user(6), "").trackingEvents()); n != 1 {
			t.Errorf("listed %d events, want 1", n)
		}
	})

	t.Run("user ids beyond 32 bits", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		for _, uid := range []int64{3000000000, 1<<63 - 1} {
			c := cf.do("POST", "/api/event", cf.admin, trackingBody("user_id", fmt.Sprint(uid))).trackingCreated()
			for _, tok := range []string{cf.admin, cf.user(uid)} {
				es := cf.do("GET", fmt.Sprintf("/api/events?user_id=%d", uid), tok, "").trackingEvents()
				if len(es) != 1 || es[0].ID != c.ID || es[0].UserID != uid {
					t.Errorf("user %d: listed %+v", uid, es)
				}
			}
			// The user's own credential without user_id.
			if es := cf.do("GET", "/api/events", cf.user(uid), "").trackingEvents(); len(es) != 1 || es[0].UserID != uid {
				t.Errorf("user %d, own listing: %+v", uid, es)
			}
		}
	})

	t.Run("from and to are inclusive, on the stored time", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u6 := cf.user(6)
		// event_action_timestamp long before, and in reverse order of
		// storage: the filter must use the stored time.
		var ids, at []string
		for i := range 3 {
			c := cf.do("POST", "/api/event", u6, trackingBody("event_action_timestamp", fmt.Sprintf(`"2020-01-01T00:00:0%dZ"`, 3-i))).trackingCreated()
			ids, at = append(ids, c.ID), append(at, c.CreatedAt)
		}
		q := url.QueryEscape
		plus2 := func(s string) string { // the same instant at +02:00
			tm, _ := time.Parse(time.RFC3339Nano, s)
			return tm.In(time.FixedZone("", 2*3600)).Format(time.RFC3339Nano)
		}
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"", ids},
			{"from=" + at[0] + "&to=" + at[2], ids},
			{"from=" + at[1] + "&to=" + at[1], ids[1:2]},
			{"from=" + at[0] + "&to=" + at[1], ids[:2]},
			{"from=" + at[1], ids[1:]},
			{"to=" + at[1], ids[:2]},
			{"to=" + at[0], ids[:1]},
			{"from=" + at[2], ids[2:]},
			{"from=" + q(plus2(at[1])), ids[1:]},
			{"to=" + q(plus2(at[1])), ids[:2]},
			{"from=2020-01-01T00:00:00Z&to=2020-01-01T00:00:05Z", nil}, // event_action_timestamp is not filtered
			{"from=" + at[2] + "&to=" + at[2] + "&offset=1", nil},
		} {
			got := trackingIDs(cf.do("GET", "/api/events?user_id=6&"+tc.query, u6, "").trackingEvents())
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: listed %q, want %q", tc.query, got, tc.want)
			}
		}
		// One microsecond either side of an event excludes it.
		tm, _ := time.Parse(time.RFC3339Nano, at[1])
		before, after := domain.FormatTime(tm.Add(-time.Microsecond)), domain.FormatTime(tm.Add(time.Microsecond))
		if got := trackingIDs(cf.do("GET", "/api/events?to="+before+"&from="+at[0], u6, "").trackingEvents()); !slices.Equal(got, ids[:1]) {
			t.Errorf("to just before the second event: %q", got)
		}
		if got := trackingIDs(cf.do("GET", "/api/events?from="+after, u6, "").trackingEvents()); !slices.Equal(got, ids[2:]) {
			t.Errorf("from just after the second event: %q", got)
		}
	})

	t.Run("bad filters are 400", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u6 := cf.user(6)
		for _, tc := range []struct {
			query  string
			fields []string
		}{
			{"from=2025-10-02T00:00:00Z&to=2025-10-01T00:00:00Z", []string{"from"}},
			{"from=2025-10-01T00:00:00.000001Z&to=2025-10-01T00:00:00Z", []string{"from"}},
			{"from=yesterday", []string{"from"}},
			{"to=2025-13-01T00:00:00Z", []string{"to"}},
			{"from=2025-10-01", []string{"from"}},
			{"from=2025-10-01T00:00:00+02:00", []string{"from"}}, // '+' not encoded: a space
			{"user_id=abc", []string{"user_id"}},
			{"user_id=0", []string{"user_id"}},
			{"user_id=-6", []string{"user_id"}},
			{"user_id=99999999999999999999", []string{"user_id"}},
			{"limit=0", []string{"limit"}},
			{"limit=-2", []string{"limit"}},
			{"limit=1001", []string{"limit"}},
			{"limit=ten", []string{"limit"}},
			{"offset=-1", []string{"offset"}},
			{"offset=1.5", []string{"offset"}},
			{"offset=1e3", []string{"offset"}},
			{"offset=99999999999", []string{"offset"}},
			{"limit=0&offset=-1&from=x", []string{"from", "limit", "offset"}},
			{"limit=1&limit=2", []string{"limit"}},
			{"from=2025-10-01T00:00:00Z&from=2025-10-02T00:00:00Z", []string{"from"}},
		} {
			r := cf.do("GET", "/api/events?"+tc.query, u6, "")
			p, details := r.trackingProblem(http.StatusBadRequest, "Validation failed")
			if !slices.Equal(p.fields(), tc.fields) {
				t.Errorf("%s: blames %q, want %q: %s", tc.query, p.fields(), tc.fields, r.body)
			}
			if !strings.Contains(details, tc.fields[0]) {
				t.Errorf("%s: details %q", tc.query, details)
			}
		}
		r := cf.do("GET", "/api/events?from=2025-10-01T00:00:00+02:00", u6, "")
		if _, details := r.trackingProblem(400, "Validation failed"); !strings.Contains(details, "%2B") {
			t.Errorf("an unencoded '+' is not explained: %q", details)
		}
		r = cf.do("GET", "/api/events?%zz", u6, "")
		r.trackingProblem(400, "Validation failed")
	})

	t.Run("limit defaults to 100, -1 is the maximum", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u6 := cf.user(6)
		var b strings.Builder
		b.WriteString(`{"events":[`)
		for i := range 105 {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`{"action":"viewed"}`)
		}
		cf.do("POST", "/v1/events/batch", u6, b.String()+"]}").want(200)
		for query, want := range map[string]int{"": 100, "limit=-1": 105, "limit=1000": 105, "limit=7": 7, "limit=100&offset=100": 5, "offset=200": 0} {
			if n := len(cf.do("GET", "/api/events?"+query, u6, "").trackingEvents()); n != want {
				t.Errorf("%q: %d events, want %d", query, n, want)
			}
		}
	})

	t.Run("offset paging is stable: every event exactly once", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u6 := cf.user(6)
		// Ties: ten events stored at the same instant, between others.
		for range 3 {
			cf.do("POST", "/api/event", u6, trackingExample).trackingCreated()
		}
		cf.clock.SetStep(0)
		for range 10 {
			cf.do("POST", "/api/event", u6, trackingExample).trackingCreated()
		}
		cf.clock.SetStep(time.Millisecond)
		for range 4 {
			cf.do("POST", "/api/event", u6, trackingExample).trackingCreated()
		}
		cf.do("POST", "/api/event", cf.user(7), trackingBody("user_id", "7")).trackingCreated() // another user's
		want := sortedByRecorded(filterUser(cf.stored(), 6))
		if len(want) != 17 {
			t.Fatalf("user 6 has %d events, want 17", len(want))
		}
		for _, limit := range []int{1, 3, 4, 7, 17, 100} {
			var got []string
			for offset := 0; ; offset += limit {
				page := trackingIDs(cf.do("GET", fmt.Sprintf("/api/events?user_id=6&limit=%d&offset=%d", limit, offset), u6, "").trackingEvents())
				got = append(got, page...)
				if len(page) < limit {
					break
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("limit %d: paged %q, want %q", limit, got, want)
			}
		}
	})

	t.Run("ownership and scopes as on /v1", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u6, u7 := cf.user(6), cf.user(7)
		mine := cf.do("POST", "/api/event", u6, trackingExample).trackingCreated()
		theirs := cf.do("POST", "/api/event", u7, trackingBody("user_id", "7")).trackingCreated()

		cf.do("GET", "/api/events?user_id=6", u7, "").trackingProblem(http.StatusForbidden, "Forbidden")
		cf.do("POST", "/api/event", u7, trackingExample).trackingProblem(http.StatusForbidden, "Forbidden")
		if got := trackingIDs(cf.do("GET", "/api/events", u6, "").trackingEvents()); !slices.Equal(got, []string{mine.ID}) {
			t.Errorf("own listing %q", got)
		}
		if got := trackingIDs(cf.do("GET", "/api/events", cf.admin, "").trackingEvents()); !slices.Equal(got, []string{mine.ID, theirs.ID}) {
			t.Errorf("admin listing %q", got)
		}
		if got := trackingIDs(cf.do("GET", "/api/events?user_id=7", cf.admin, "").trackingEvents()); !slices.Equal(got, []string{theirs.ID}) {
			t.Errorf("admin listing of user 7 %q", got)
		}
		ro, wo := cf.user(6, domain.ScopeRead), cf.user(6, domain.ScopeWrite)
		cf.do("POST", "/api/event", ro, trackingExample).trackingProblem(http.StatusForbidden, "Forbidden")
		cf.do("POST", "/api/event", ro, `{}`).trackingProblem(http.StatusForbidden, "Forbidden") // scope before validation
		cf.do("GET", "/api/events", wo, "").trackingProblem(http.StatusForbidden, "Forbidden")
		cf.do("GET", "/api/events", ro, "").trackingEvents()
		cf.do("POST", "/api/event", wo, trackingExample).trackingCreated()
		if n := len(cf.stored()); n != 3 {
			t.Errorf("store holds %d events, want 3", n)
		}
	})

	t.Run("a credential is required; Token and Bearer both work", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		for _, auth := range []string{"", "Token nope", "Bearer " + cf.user(6) + "x", "Basic dTpw"} {
			for _, rq := range []request{
				{method: "POST", path: "/api/event", body: trackingExample},
				{method: "GET", path: "/api/events"},
			} {
				rq.header = map[string]string{"Authorization": auth}
				r := cf.serve(rq)
				r.trackingProblem(http.StatusUnauthorized, "Unauthorized")
				if r.hdr.Get("WWW-Authenticate") == "" {
					t.Errorf("%s: no WWW-Authenticate", r)
				}
			}
		}
		cf.do("POST", "/api/event", cf.user(6), trackingExample).trackingCreated()
		cf.call("POST", "/api/event", cf.user(6), trackingExample).trackingCreated()
		if n := len(cf.call("GET", "/api/events", cf.user(6), "").trackingEvents()); n != 2 {
			t.Errorf("listed %d, want 2", n)
		}
	})

	t.Run("trailing slashes and methods", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		c := cf.do("POST", "/api/event/", cf.user(6), trackingExample).trackingCreated()
		if got := trackingIDs(cf.do("GET", "/api/events/?user_id=6", cf.user(6), "").trackingEvents()); !slices.Equal(got, []string{c.ID}) {
			t.Errorf("listed %q", got)
		}
		for _, tc := range []struct {
			method, path string
			allow        []string
		}{
			{"GET", "/api/event", []string{"POST"}},
			{"PUT", "/api/event/", []string{"POST"}},
			{"POST", "/api/events", []string{"GET", "HEAD"}},
			{"DELETE", "/api/events/", []string{"GET", "HEAD"}},
		} {
			r := cf.do(tc.method, tc.path, cf.user(6), "")
			r.problem(http.StatusMethodNotAllowed)
			got := r.hdr.Values("Allow")
			slices.Sort(got)
			if !slices.Equal(got, tc.allow) {
				t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
			}
		}
	})

	t.Run("Idempotency-Key makes a retry safe", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		send := func(body string) *response {
			return cf.serve(request{method: "POST", path: "/api/event", token: cf.user(6), body: body,
				header: map[string]string{"Idempotency-Key": "retry-1"}})
		}
		first := send(trackingExample).trackingCreated()
		r := send(trackingExample).want(http.StatusOK)
		var again trackingCreated
		exactObject(t, r.String(), r.body, &again, "createdAt", "id")
		if again != first {
			t.Errorf("retry answered %+v, want %+v", again, first)
		}
		send(trackingBody("action", `"viewed"`)).trackingProblem(http.StatusConflict, "Conflict")
		if n := len(cf.stored()); n != 1 {
			t.Errorf("store holds %d events, want 1", n)
		}
	})
}

func filterUser(es []domain.Event, uid int64) []domain.Event {
	var out []domain.Event
	for _, e := range es {
		if e.UserID == uid {
			out = append(out, e)
		}
	}
	return out
}
