package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/test/stores"
)

// Fuzz tests for every decoder of client input: event bodies, batch
// bodies, status changes, query strings (of events and of counts) and path
// segments. Each asserts
// that no input produces a 5xx, that every error is a problem document
// matching its status, that every success has the documented shape, and
// that a rejected write leaves the store as it was.
//
//	go test -run '^$' -fuzz FuzzPostEvent ./adapters/http/

const maxSeed = 64 << 10

func addBodySeeds(f *testing.F, valid ...string) {
	for _, b := range hostileBodies() {
		if len(b) <= maxSeed {
			f.Add(b)
		}
	}
	for _, b := range valid {
		f.Add(b)
	}
}

// checkAnswer is hostileResult without the expectation of failure.
func checkAnswer(t *testing.T, r *response) {
	t.Helper()
	if r.code >= 500 {
		t.Fatalf("%s", r)
	}
	if r.code >= 400 {
		if _, err := r.problemErr(); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
	}
}

func FuzzPostEvent(f *testing.F) {
	addBodySeeds(f,
		`{"action":"login"}`,
		`{"user_id":1,"action":"LOGOUT","occurred_at":"2025-06-01T10:00:00.5+02:00","metadata":{"ip":"10.0.0.1","n":[1,2,{"x":null}]}}`,
		`{"id":"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70","action":"viewed","metadata":{}}`,
	)
	f.Fuzz(func(t *testing.T, body string) {
		fx := newFixture(t)
		fx.skipRequestCheck = true // malformed on purpose: only the responses are checked against the document
		r := fx.do("POST", "/v1/events", fx.u1, body)
		checkAnswer(t, r)
		stored := fx.storedEvents()
		switch r.code {
		case http.StatusCreated:
			e := r.event()
			if len(stored) != 1 || stored[0].ID.String() != e.ID || e.UserID != 1 {
				t.Fatalf("%s: store holds %+v", r, stored)
			}
		default:
			if r.code < 400 {
				t.Fatalf("%s: unexpected status", r)
			}
			if len(stored) != 0 {
				t.Fatalf("%s: rejected, yet stored %+v", r, stored)
			}
		}
	})
}

func FuzzBatch(f *testing.F) {
	addBodySeeds(f,
		`{"events":[{"action":"login"},{"action":"dance"},{"user_id":2,"action":"login"}]}`,
		`{"events":[{"id":"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70","action":"login"},{"id":"0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70","action":"logout"}]}`,
	)
	f.Fuzz(func(t *testing.T, body string) {
		fx := newFixture(t)
		fx.skipRequestCheck = true // malformed on purpose: only the responses are checked against the document
		r := fx.do("POST", "/v1/events/batch", fx.u1, body)
		checkAnswer(t, r)
		stored := fx.storedEvents()
		if r.code != http.StatusOK {
			if len(stored) != 0 {
				t.Fatalf("%s: rejected, yet stored %d events", r, len(stored))
			}
			return
		}
		var out struct {
			Items []struct {
				Index  int             `json:"index"`
				Status int             `json:"status"`
				Event  *eventDoc       `json:"event"`
				Error  json.RawMessage `json:"error"`
			} `json:"items"`
		}
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		created := 0
		for i, it := range out.Items {
			switch {
			case it.Index != i:
				t.Fatalf("%s: item %d has index %d", r, i, it.Index)
			case it.Status == 201 || it.Status == 200:
				if it.Event == nil {
					t.Fatalf("%s: item %d without event", r, i)
				}
				checkEvent(t, *it.Event)
				if it.Status == 201 {
					created++
				}
			case it.Status >= 400 && it.Status < 500:
				var p problemDoc
				if err := json.Unmarshal(it.Error, &p); err != nil || p.Status != it.Status {
					t.Fatalf("%s: item %d error %s", r, i, it.Error)
				}
			default:
				t.Fatalf("%s: item %d status %d", r, i, it.Status)
			}
		}
		if created != len(stored) {
			t.Fatalf("%s: %d items created, store holds %d", r, created, len(stored))
		}
	})
}

func FuzzPatchEvent(f *testing.F) {
	addBodySeeds(f, `{"status":"IN_PROGRESS"}`, `{"status":"DONE"}`)
	f.Fuzz(func(t *testing.T, body string) {
		fx := newFixture(t)
		fx.skipRequestCheck = true // malformed on purpose: only the responses are checked against the document
		e := fx.create(fx.u1, `{"action":"login"}`)
		before := snapshot(t, fx)
		r := fx.do("PATCH", "/v1/events/"+e.ID, fx.u1, body)
		checkAnswer(t, r)
		if r.code == http.StatusOK {
			if got := r.event(); got.Status != "IN_PROGRESS" {
				t.Fatalf("%s: PENDING moved to %s", r, got.Status)
			}
			return
		}
		if after := snapshot(t, fx); !reflect.DeepEqual(before, after) {
			t.Fatalf("%s: rejected, yet the store changed", r)
		}
	})
}

func FuzzQuery(f *testing.F) {
	for _, q := range hostileQueries() {
		if len(q) <= maxSeed {
			f.Add(q)
		}
	}
	for _, q := range []string{"", "user_id=1", "action=login,logout&action=viewed", "status=PENDING&order=asc&limit=2",
		"from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00%2B01:00&time_field=occurred_at"} {
		f.Add(q)
	}
	fx := newFixture(f)
	fx.skipRequestCheck = true // malformed on purpose: only the responses are checked against the document
	for range 3 {
		fx.create(fx.u1, `{"action":"login"}`)
	}
	f.Fuzz(func(t *testing.T, q string) {
		fx.t = t
		for _, token := range []string{fx.u1, fx.admin} {
			for _, path := range []string{"/v1/events?", "/v1/users/1/events?"} {
				r := fx.do("GET", path+q, token, "")
				checkAnswer(t, r)
				if r.code < 400 {
					r.list()
				}
			}
		}
	})
}

// FuzzCountsQuery: any query string on the count listings is a 200 or a
// problem document, never a 500.
func FuzzCountsQuery(f *testing.F) {
	for _, q := range hostileQueries() {
		if len(q) <= maxSeed {
			f.Add(q)
		}
	}
	for _, q := range []string{"", "user_id=1", "order=asc&limit=2", "from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00%2B01:00",
		"cursor=YwEAAAAAAAAAAAAAAAAAAAAB"} {
		f.Add(q)
	}
	fx := newCountFixture(f, stores.Memory(f), nil)
	fx.skipRequestCheck = true // malformed on purpose: only the responses are checked against the document
	fx.recordAt(1, "login", w0)
	fx.recordAt(2, "login", w0)
	if _, err := fx.counts.Compute(context.Background(), domain.Window{Start: w0, End: w1}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, q string) {
		fx.t = t
		for _, token := range []string{fx.u1, fx.admin} {
			for _, path := range []string{"/v1/activity-counts?", "/v1/users/1/activity-counts?"} {
				r := fx.do("GET", path+q, token, "")
				checkAnswer(t, r)
				if r.code < 400 {
					r.counts()
				}
			}
		}
	})
}

func FuzzPathSegment(f *testing.F) {
	for _, s := range hostileSegments {
		f.Add(s)
	}
	f.Add("0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70")
	f.Add("1")
	fx := newFixture(f)
	fx.skipRequestCheck = true // malformed on purpose: only the responses are checked against the document
	fx.create(fx.u1, `{"action":"login"}`)
	before := snapshot(f, fx)
	f.Fuzz(func(t *testing.T, seg string) {
		if strings.ContainsAny(seg, "?#") {
			return // not a path segment
		}
		fx.t = t
		for _, rq := range []request{
			{method: "GET", path: "/v1/events/" + seg},
			{method: "PATCH", path: "/v1/events/" + seg, body: `{"status":"DONE"}`},
			{method: "GET", path: "/v1/users/" + seg + "/events"},
		} {
			rq.token = fx.u1
			checkAnswer(t, fx.serve(rq))
		}
		if after := snapshot(t, fx); !reflect.DeepEqual(before, after) {
			t.Fatalf("segment %q changed the store", seg)
		}
	})
}
