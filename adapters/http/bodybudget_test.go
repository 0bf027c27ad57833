package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	httpapi "github.com/activityd/activityd/adapters/http"
)

// heldBatch is a POST /v1/events/batch announcing a 1 MiB body whose bytes
// the test sends when it likes: the handler holds its reservation of the
// body budget from the first byte it reads until the body is decoded.
type heldBatch struct {
	w    *io.PipeWriter
	code chan int
}

const mib = 1 << 20

// batchBody is a valid batch padded with spaces to exactly n bytes.
func batchBody(n int) string {
	b := `{"events":[{"user_id":1,"action":"login"}]}`
	return b + strings.Repeat(" ", n-len(b))
}

func holdBatch(t *testing.T, f *fixture) *heldBatch {
	t.Helper()
	pr, pw := io.Pipe()
	h := &heldBatch{w: pw, code: make(chan int, 1)}
	req := httptest.NewRequest("POST", "/v1/events/batch", pr)
	req.ContentLength = mib
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+f.admin)
	go func() {
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		h.code <- rec.Code
	}()
	t.Cleanup(func() { pw.Close() })
	// The write returns once the handler reads the byte: after its
	// reservation. A handler that answers without reading ends the wait.
	wrote := make(chan error, 1)
	go func() { _, err := io.WriteString(pw, batchBody(mib)[:1]); wrote <- err }()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case code := <-h.code:
		t.Fatalf("the batch to hold was answered %d before reading its body", code)
	}
	return h
}

// finish sends the rest of the body and returns the answer's status.
func (h *heldBatch) finish(t *testing.T) int {
	t.Helper()
	if _, err := io.WriteString(h.w, batchBody(mib)[1:]); err != nil {
		t.Fatal(err)
	}
	h.w.Close()
	return <-h.code
}

// TestBodyBudget: with a budget of 2 MiB held by two 1 MiB batches being
// read, every route that reads a body (on every surface) is answered 503
// overloaded with Retry-After after its short wait; once the two are
// decoded the budget is free and all succeed.
func TestBodyBudget(t *testing.T) {
	f := newFixture(t, withConfig(func(c *httpapi.Config) {
		c.BodyMemoryBudget = 2 * mib
		c.BodyBudgetWait = time.Millisecond
	}))
	id := f.create(f.u1, `{"action":"login"}`).ID
	reads := []struct {
		name   string
		req    request
		status int // once the budget is free
	}{
		{"a third batch", request{method: "POST", path: "/v1/events/batch", token: f.admin, body: batchBody(mib)}, 200},
		{"a create", request{method: "POST", path: "/v1/events", token: f.u1, body: `{"action":"login"}`}, 201},
		{"a status change", request{method: "PATCH", path: "/v1/events/" + id, token: f.u1, body: `{"status":"IN_PROGRESS"}`}, 200},
		{"a create on /api/event", request{method: "POST", path: "/api/event", token: f.u1,
			body: `{"user_id":1,"action":"login","event_action_timestamp":"2025-06-01T12:00:00Z","metadata":{}}`}, 201},
		{"a create on /api/logs/", request{method: "POST", path: "/api/logs/", token: f.u1, body: `{"action":"LOGIN"}`}, 201},
		{"a status change on /api/logs/", request{method: "PATCH", path: "/api/logs/update/" + id + "/", token: f.u1,
			body: `{"status":"DONE"}`}, 200},
	}

	held := []*heldBatch{holdBatch(t, f), holdBatch(t, f)}
	for _, rd := range reads {
		r := f.serve(rd.req)
		r.problem(http.StatusServiceUnavailable)
		if r.hdr.Get("Retry-After") == "" || !strings.Contains(string(r.body), "overloaded") {
			t.Errorf("%s while the budget is taken: Retry-After %q, %s", rd.name, r.hdr.Get("Retry-After"), r.body)
		}
	}
	// Health probes and reads without a body are not held up.
	f.do("GET", "/healthz", "", "").want(200)
	f.do("GET", "/v1/users/1/events", f.u1, "").want(200)

	for i, h := range held {
		if code := h.finish(t); code != 200 {
			t.Fatalf("held batch %d: %d, want 200", i, code)
		}
	}
	for _, rd := range reads {
		r := f.serve(rd.req)
		if r.code != rd.status {
			t.Errorf("%s once the budget is free: %s, want %d", rd.name, r, rd.status)
		}
	}
}

// A request that finds the budget taken waits for it (up to
// BodyBudgetWait) rather than failing at once, and a body refused for
// other reasons (413, a 400 of bad JSON) gives its reservation back.
func TestBodyBudgetWaitsAndReleases(t *testing.T) {
	f := newFixture(t, withConfig(func(c *httpapi.Config) {
		c.BodyMemoryBudget = mib
		c.BodyBudgetWait = 10 * time.Second // a bound: never reached when it passes
	}))
	// Refusals after the reservation: each must give it back, or the
	// batch below would wait in vain.
	f.do("POST", "/v1/events", f.u1, `{"action":`).problem(400)
	chunked := newRawRequest("POST", "/v1/events/batch", batchBody(mib+1))
	chunked.Header.Set("Authorization", "Bearer "+f.admin)
	chunked.ContentLength = -1 // the limit is reserved, then found exceeded
	f.serveRaw(chunked).problem(413)
	f.do("POST", "/v1/events", f.u1, `{"action":"login","bogus":1}`).problem(400)

	h := holdBatch(t, f)
	got := make(chan *response, 1)
	go func() { got <- f.do("POST", "/v1/events", f.u1, `{"action":"login"}`) }()
	if code := h.finish(t); code != 200 {
		t.Fatalf("held batch: %d", code)
	}
	(<-got).want(201)
}
