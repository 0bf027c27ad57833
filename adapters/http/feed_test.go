package httpapi_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	httpapi "github.com/activityd/activityd/adapters/http"
)

type changeDoc struct {
	Position int64    `json:"position"`
	Kind     string   `json:"kind"`
	At       string   `json:"at"`
	Event    eventDoc `json:"event"`
}

type changePage struct {
	Items []changeDoc `json:"items"`
	Next  int64       `json:"next_position"`
}

func (r *response) changes() changePage {
	r.t.Helper()
	var p changePage
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		r.t.Fatalf("%s: not a page of changes: %v", r, err)
	}
	return p
}

func TestChangesPages(t *testing.T) {
	f := newFixture(t)
	a := f.create(f.u1, `{"action":"login","metadata":{"q":"\"x\"\n","ü":[1,{"n":null}]}}`)
	f.create(f.u2, `{"action":"upload_file"}`)
	f.do("PATCH", "/v1/events/"+a.ID, f.u1, `{"status":"IN_PROGRESS"}`).want(http.StatusOK)

	all := f.do("GET", "/v1/changes", f.admin, "").want(http.StatusOK)
	if cc := all.hdr.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q", cc)
	}
	p := all.changes()
	if len(p.Items) != 3 || p.Next != 3 {
		t.Fatalf("admin's feed: %+v", p)
	}
	for i, want := range []string{"event.recorded", "event.recorded", "event.status_changed"} {
		if c := p.Items[i]; c.Kind != want || c.Position != int64(i+1) {
			t.Errorf("item %d = %d %s, want %d %s", i, c.Position, c.Kind, i+1, want)
		}
	}
	if e := p.Items[0].Event; e.ID != a.ID || e.Status != "PENDING" || string(e.Metadata) != string(a.Metadata) {
		t.Errorf("first change's event = %+v, want %s PENDING with %s", e, a.ID, a.Metadata)
	}
	if e := p.Items[2].Event; e.Status != "IN_PROGRESS" || p.Items[2].At != e.UpdatedAt {
		t.Errorf("the status change: event %+v at %s", e, p.Items[2].At)
	}
	// The event as /v1 renders it, as GET /v1/events/{id} does.
	single := f.do("GET", "/v1/events/"+a.ID, f.u1, "").want(http.StatusOK)
	var raw struct {
		Items []struct {
			Event json.RawMessage `json:"event"`
		} `json:"items"`
	}
	if err := json.Unmarshal(all.body, &raw); err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	_ = json.Unmarshal(raw.Items[2].Event, &got)
	_ = json.Unmarshal(single.body, &want)
	delete(want, "status_history") // GET of one event adds it; lists and the feed do not
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Errorf("the feed's event %s\nGET's %s", g, w)
	}

	mine := f.do("GET", "/v1/changes", f.u1, "").want(http.StatusOK).changes()
	if len(mine.Items) != 2 || mine.Items[0].Position != 1 || mine.Items[1].Position != 3 || mine.Next != 3 {
		t.Errorf("user 1's feed: %+v", mine)
	}
	f.do("GET", "/v1/changes?user_id=2", f.u1, "").want(http.StatusForbidden)
	if p := f.do("GET", "/v1/changes?user_id=2", f.admin, "").want(http.StatusOK).changes(); len(p.Items) != 1 || p.Items[0].Position != 2 {
		t.Errorf("admin, user 2: %+v", p)
	}
	if p := f.do("GET", "/v1/changes?after=1&limit=1", f.admin, "").want(http.StatusOK).changes(); len(p.Items) != 1 || p.Next != 2 {
		t.Errorf("after=1&limit=1: %+v", p)
	}
	if p := f.do("GET", "/v1/changes?after=3", f.admin, "").want(http.StatusOK).changes(); len(p.Items) != 0 || p.Next != 3 {
		t.Errorf("after the head: %+v", p)
	}
	f.do("GET", "/v1/changes", "", "").want(http.StatusUnauthorized)
	f.do("GET", "/v1/changes", f.u1wo, "").want(http.StatusForbidden)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestChangesBadInput(t *testing.T) {
	f := newFixture(t)
	f.create(f.u1, `{"action":"login"}`)
	for _, tc := range []struct{ query, field string }{
		{"after=-1", "after"},
		{"after=x", "after"},
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"wait=61s", "wait"},
		{"wait=later", "wait"},
		{"user_id=0", "user_id"},
		{"after=2", "after"}, // one change so far: position 2 was never given
		{"bogus=1", "bogus"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			r := f.do("GET", "/v1/changes?"+tc.query, f.admin, "")
			if r.code != http.StatusBadRequest && r.code != http.StatusUnprocessableEntity {
				t.Fatalf("status %d: %s", r.code, r.body)
			}
			if p := r.problem(r.code); !p.blames(tc.field) {
				t.Errorf("the problem does not name %s: %s", tc.field, r.body)
			}
		})
	}
}

// TestChangesLongPoll: a waiting request answers when a change arrives,
// and the followers' bound answers 503 beyond it without touching
// MAX_IN_FLIGHT.
func TestChangesLongPoll(t *testing.T) {
	f := newFixture(t, withConfig(func(c *httpapi.Config) { c.MaxFollowers = 1; c.MaxInFlight = 1 }))
	got := make(chan *response, 1)
	go func() { got <- f.do("GET", "/v1/changes?wait=30s", f.u1, "") }()
	// Wait until the long poll holds the only follower slot (probes do not
	// wait, so they hold it for an instant only).
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(20 * time.Millisecond)
		r := f.do("GET", "/v1/changes", f.u2, "")
		if r.code == http.StatusServiceUnavailable {
			if p := r.problem(http.StatusServiceUnavailable); !strings.Contains(p.Detail, "feed readers") {
				t.Errorf("503 detail: %s", p.Detail)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second follower was never refused")
		}
	}
	// MAX_IN_FLIGHT=1 still lets a write through while the poll waits.
	e := f.create(f.u1, `{"action":"login"}`)
	select {
	case r := <-got:
		p := r.want(http.StatusOK).changes()
		if len(p.Items) != 1 || p.Items[0].Event.ID != e.ID {
			t.Errorf("long poll answered %+v, want the new event", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll was not answered")
	}
}

// TestChangesEventStream: Server-Sent Events over a real connection, then
// a reconnection with Last-Event-ID that resumes exactly after it.
func TestChangesEventStream(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.srv)
	t.Cleanup(srv.Close)
	first := f.create(f.u1, `{"action":"login"}`)

	open := func(lastID string) (*http.Response, *bufio.Reader) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/v1/changes", nil)
		req.Header.Set("Authorization", "Bearer "+f.u1)
		req.Header.Set("Accept", "text/event-stream")
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("status %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
		}
		return res, bufio.NewReader(res.Body)
	}
	// next reads one event: its id and its data.
	next := func(r *bufio.Reader) (int64, changeDoc) {
		t.Helper()
		var id int64
		var c changeDoc
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the stream: %v", err)
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case strings.HasPrefix(line, "id: "):
				id, _ = strconv.ParseInt(line[4:], 10, 64)
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(line[6:]), &c); err != nil {
					t.Fatalf("data %q: %v", line, err)
				}
			case line == "" && id != 0:
				return id, c
			}
		}
	}
	res, r := open("")
	if id, c := next(r); id != 1 || c.Position != 1 || c.Event.ID != first.ID {
		t.Fatalf("first event: id %d, %+v", id, c)
	}
	second := f.create(f.u1, `{"action":"logout"}`)
	f.create(f.u2, `{"action":"login"}`) // not user 1's: not in the stream
	third := f.create(f.u1, `{"action":"login"}`)
	if id, c := next(r); id != 2 || c.Event.ID != second.ID {
		t.Fatalf("second event: id %d, %+v", id, c)
	}
	if id, c := next(r); id != 4 || c.Event.ID != third.ID {
		t.Fatalf("third event: id %d, %+v (position 3 is user 2's)", id, c)
	}
	res.Body.Close()

	f.do("PATCH", "/v1/events/"+second.ID, f.u1, `{"status":"IN_PROGRESS"}`).want(http.StatusOK)
	res, r = open("2") // it saw 2 only
	defer res.Body.Close()
	if id, c := next(r); id != 4 || c.Event.ID != third.ID {
		t.Fatalf("resumed: id %d, %+v, want 4", id, c)
	}
	if id, c := next(r); id != 5 || c.Kind != "event.status_changed" || c.Event.Status != "IN_PROGRESS" {
		t.Fatalf("resumed: id %d, %+v, want the status change at 5", id, c)
	}
	// A bad Last-Event-ID is a problem, before any stream.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/v1/changes", nil)
	req.Header.Set("Authorization", "Bearer "+f.u1)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", "nope")
	bad, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	if bad.StatusCode != http.StatusBadRequest && bad.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("a bad Last-Event-ID: status %d", bad.StatusCode)
	}
}
