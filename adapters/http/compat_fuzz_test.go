package httpapi_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// Fuzz tests for the predecessors' decoders: POST /api/event, POST
// /api/logs/, PATCH /api/logs/update/{id}/, their query strings and path
// segments. Each asserts what compatHostileResult does: no 5xx, errors are
// problem documents (with error/details on the event-tracking surface),
// successes have their shape, and a rejected write changes nothing.
//
//	go test -run '^$' -fuzz FuzzTrackingEvent ./adapters/http/

func addCompatSeeds(f *testing.F, valid ...string) {
	addBodySeeds(f, valid...)
	for _, b := range trackingHostileBodies() {
		if len(b) <= maxSeed {
			f.Add(b)
		}
	}
}

func FuzzTrackingEvent(f *testing.F) {
	addCompatSeeds(f, trackingBody("user_id", "1"), strings.Replace(trackingExample, "6", "1", 1))
	f.Fuzz(func(t *testing.T, body string) {
		cf := newCompatFixture(t, memoryStore)
		cf.skipRequestCheck = true // malformed on purpose: only the responses are checked against the document
		r := cf.call("POST", "/api/event", cf.user(1), body)
		accepted := map[string]bool{}
		if r.code == http.StatusCreated {
			c := r.trackingCreated()
			if es := cf.stored(); len(es) != 1 || es[0].ID.String() != c.ID || es[0].UserID != 1 {
				t.Fatalf("%s: store holds %+v", r, es)
			}
			return
		}
		compatHostileResult(t, r, 1, accepted)
		if n := len(cf.stored()); n != 0 {
			t.Fatalf("%s: rejected, yet stored %d events", r, n)
		}
	})
}

func FuzzLogEntry(f *testing.F) {
	addCompatSeeds(f, logsExample, `{"action":"upload_file","status":"DONE","user":2}`)
	f.Fuzz(func(t *testing.T, body string) {
		cf := newCompatFixture(t, memoryStore)
		cf.skipRequestCheck = true // malformed on purpose: only the responses are checked against the document
		r := cf.call("POST", "/api/logs/", cf.user(1), body)
		accepted := map[string]bool{}
		compatHostileResult(t, r, 1, accepted)
		es := cf.stored()
		if len(es) != len(accepted) {
			t.Fatalf("%s: %d accepted, store holds %d", r, len(accepted), len(es))
		}
		if len(es) == 1 && (!accepted[es[0].ID.String()] || es[0].UserID != 1) {
			t.Fatalf("%s: stored %+v", r, es[0])
		}
	})
}

func FuzzLogStatus(f *testing.F) {
	addCompatSeeds(f, `{"status":"IN_PROGRESS"}`, `{"status":"IN_PROGRESS","action":"LOGOUT"}`)
	f.Fuzz(func(t *testing.T, body string) {
		cf := newCompatFixture(t, memoryStore)
		cf.skipRequestCheck = true // malformed on purpose: only the responses are checked against the document
		l := cf.call("POST", "/api/logs/", cf.user(1), logsExample).logEntry(http.StatusCreated)
		before := compatSnapshot(t, cf.st)
		r := cf.call("PATCH", "/api/logs/update/"+l.ID.String()+"/", cf.user(1), body)
		if r.code == http.StatusOK {
			if got := r.logEntry(http.StatusOK); got.Status != "IN_PROGRESS" || got.Action != "LOGIN" {
				t.Fatalf("%s: PENDING LOGIN became %s %s", r, got.Status, got.Action)
			}
			return
		}
		compatHostileResult(t, r, 1, nil)
		if after := compatSnapshot(t, cf.st); !reflect.DeepEqual(before, after) {
			t.Fatalf("%s: rejected, yet the store changed", r)
		}
	})
}

func FuzzCompatQuery(f *testing.F) {
	for _, q := range append(hostileQueries(), compatHostileQueries()...) {
		if len(q) <= maxSeed {
			f.Add(q)
		}
	}
	for _, q := range []string{"", "user_id=1", "from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00%2B01:00&limit=-1&offset=1",
		"action=LOGIN&start=2025-11-01&end=2025-11-01", "from=2025-11-01T09:00:00Z&to=2025-11-01&limit=2"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		cf := newCompatFixture(t, memoryStore)
		cf.skipRequestCheck = true // malformed on purpose: only the responses are checked against the document
		for range 3 {
			cf.call("POST", "/api/logs/", cf.user(1), logsExample).logEntry(http.StatusCreated)
		}
		for _, tok := range []string{cf.user(1), cf.admin} {
			for _, p := range []string{"/api/events?", "/api/logs/1?", "/api/logs/1/?"} {
				compatHostileResult(t, cf.call("GET", p+q, tok, ""), 1, nil)
			}
		}
	})
}

func FuzzCompatPathSegment(f *testing.F) {
	for _, s := range hostileSegments {
		f.Add(s)
	}
	f.Add("1")
	f.Fuzz(func(t *testing.T, seg string) {
		if strings.ContainsAny(seg, "?#") {
			return // not a path segment
		}
		cf := newCompatFixture(t, memoryStore)
		cf.skipRequestCheck = true // malformed on purpose: only the responses are checked against the document
		cf.call("POST", "/api/logs/", cf.user(1), logsExample).logEntry(http.StatusCreated)
		before := compatSnapshot(t, cf.st)
		for _, rq := range []struct{ method, path, body string }{
			{"GET", "/api/logs/" + seg, ""},
			{"GET", "/api/logs/" + seg + "/", ""},
			{"PATCH", "/api/logs/update/" + seg + "/", `{"status":"DONE"}`},
			{"PATCH", "/api/logs/update/" + seg, `{"status":"DONE"}`},
		} {
			compatHostileResult(t, cf.call(rq.method, rq.path, cf.user(1), rq.body), 1, nil)
		}
		if after := compatSnapshot(t, cf.st); !reflect.DeepEqual(before, after) {
			t.Fatalf("segment %q changed the store", seg)
		}
	})
}
