package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/activityd/activityd/test/binary"
	"github.com/activityd/activityd/test/predecessors"
)

// frontEnd serves a blank page: the origin the event-tracking service's
// web front end was served from, another port (so another origin) than
// the API's.
func frontEnd(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><html lang=en><title>event-tracking front end</title><p>front end</p></html>")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// ginClient is what the event-tracking front end did: record an event
// without a credential, then list the user's events, with the predecessor's
// parameters. api, user, at, from and to are filled in.
const ginClient = `(async () => {
	const api = %q, out = {};
	const post = await fetch(api + "/api/event", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({user_id: %d, event_action_timestamp: %q, action: "viewed", metadata: {page: "/pricing", device: "Chrome"}})});
	out.postStatus = post.status;
	out.created = await post.json();
	const list = await fetch(api + "/api/events?user_id=%d&from=%s&to=%s&limit=10&offset=0");
	out.listStatus = list.status;
	out.xCache = list.headers.get("X-Cache") || "";
	out.events = await list.json();
	return out;
})()`

// ginResult is what the page saw.
type ginResult struct {
	PostStatus int `json:"postStatus"`
	Created    struct {
		CreatedAt string `json:"createdAt"`
		ID        string `json:"id"`
	} `json:"created"`
	ListStatus int    `json:"listStatus"`
	XCache     string `json:"xCache"`
	Events     []struct {
		ID        string         `json:"id"`
		UserID    int64          `json:"user_id"`
		Timestamp string         `json:"event_action_timestamp"`
		Action    string         `json:"action"`
		Metadata  map[string]any `json:"metadata"`
	} `json:"events"`
}

// fetchError runs a fetch in the page and returns the name of the error
// it failed with ("" if it did not fail).
const fetchError = `fetch(%q, %s).then(() => "", (e) => e.name)`

// TestCrossOriginTrackingClient: against a store filled only by
// `activityd import event-tracking` from the gin service's PostgreSQL
// database, a page on an allowed origin calls the event-tracking routes as
// the gin front end did, without a credential (EVENT_TRACKING_ANONYMOUS_*
// for 127.0.0.0/8) and with a token, and finds the imported history with
// the old parameters; a page on another origin is refused by the browser.
func TestCrossOriginTrackingClient(t *testing.T) {
	chromium := chromiumPath(t)
	b := startBrowser(t, chromium)
	allowed, other := frontEnd(t), frontEnd(t)
	dir := t.TempDir()
	store := "DATABASE_URL=sqlite:" + filepath.Join(dir, "activity.db")
	old := predecessors.ManyEvents(20) // users 1 to 5, from 2024-01-01T00:00:00Z, a second apart
	src := predecessors.EventTrackingPostgres(t, old, nil)
	if out, errOut, code := binary.Run(t, dir, []string{store}, "import", "event-tracking", src); code != 0 ||
		!strings.Contains(out, fmt.Sprintf("%-22s %d", "imported", len(old))) {
		t.Fatalf("activityd import: exit %d\n%s%s", code, out, errOut)
	}
	srv := binary.Serve.Within(30*time.Second).Start(t, dir,
		store,
		"BOOTSTRAP_ADMIN_TOKEN="+adminToken,
		"HTTP_CORS_ALLOWED_ORIGINS="+allowed.URL, // the predecessor's name, as its deployment set it
		"CORS_MAX_AGE=10m",
		"EVENT_TRACKING_ANONYMOUS_SCOPES=events:read,events:write",
		"EVENT_TRACKING_ANONYMOUS_NETWORKS=127.0.0.0/8",
	)

	// 1. The allowed page records and lists without a credential.
	b.do(t, "open the allowed front end", chromedp.Navigate(allowed.URL+"/"), chromedp.WaitVisible(chromedp.CSS("p")))
	now := time.Now().UTC()
	const user = 3        // the imported rows 2, 7, 12 and 17 are user 3's
	const stranger = 4243 // no imported history
	at := now.Add(-time.Minute).Truncate(time.Second).Format(time.RFC3339)
	from, to := "2024-01-01T00:00:00Z", now.Add(time.Hour).Format(time.RFC3339)
	got := evalAwait[ginResult](t, b, fmt.Sprintf(ginClient, srv.Base, user, at, user, from, to))
	if got.PostStatus != http.StatusCreated || got.Created.ID == "" || got.Created.CreatedAt == "" {
		t.Fatalf("POST /api/event from the page: %+v", got)
	}
	if got.ListStatus != http.StatusOK || len(got.Events) != 5 {
		t.Fatalf("GET /api/events from the page: %+v, want 4 imported events and the new one", got)
	}
	for k, i := range []int{2, 7, 12, 17} { // oldest first: the imported history
		e, want := got.Events[k], old[i]
		if e.UserID != user || e.Action != want.Action || e.Timestamp != want.WantOccurredAt.Format(time.RFC3339Nano) ||
			e.Metadata["n"] != float64(i) {
			t.Errorf("imported event %d listed as %+v, want %+v", i, e, want)
		}
	}
	e := got.Events[4]
	if e.ID != got.Created.ID || e.UserID != user || e.Action != "viewed" || e.Timestamp != at || e.Metadata["page"] != "/pricing" {
		t.Errorf("listed %+v, want the event just recorded (%s at %s)", e, got.Created.ID, at)
	}
	if got.XCache == "" {
		t.Error("the page cannot read X-Cache: not exposed")
	}

	// 2. With a token too (a preflight for Authorization), on /v1.
	var v1 struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	raw := evalAwait[string](t, b, fmt.Sprintf(`fetch(%q, {headers: {Authorization: "Bearer %s"}}).then((r) => r.text())`,
		fmt.Sprintf("%s/v1/users/%d/events", srv.Base, user), adminToken))
	if err := json.Unmarshal([]byte(raw), &v1); err != nil || len(v1.Items) != 5 || v1.Items[0].ID != got.Created.ID {
		t.Errorf("GET /v1/users/%d/events with a token from the page: %s (%v)", user, raw, err)
	}
	if errs := b.pageErrors(); len(errs) > 0 {
		t.Errorf("the allowed page reported errors: %v", errs)
	}

	// 3. A page on another origin: the browser refuses the answers (a
	// TypeError), and the POST is never sent (its preflight fails).
	b.do(t, "open another origin's page", chromedp.Navigate(other.URL+"/"), chromedp.WaitVisible(chromedp.CSS("p")))
	for name, call := range map[string]string{
		"POST /api/event": fmt.Sprintf(fetchError, srv.Base+"/api/event", fmt.Sprintf(`{method: "POST", headers: {"Content-Type": "application/json"},
			body: JSON.stringify({user_id: %d, event_action_timestamp: %q, action: "viewed", metadata: {}})}`, stranger, at)),
		"GET /api/events": fmt.Sprintf(fetchError, fmt.Sprintf("%s/api/events?user_id=%d&limit=10&offset=0", srv.Base, user), "{}"),
	} {
		if got := evalAwait[string](t, b, call); got != "TypeError" {
			t.Errorf("%s from %s: %q, want the fetch to fail with TypeError", name, other.URL, got)
		}
	}
	var list []json.RawMessage
	if st := call(t, "GET", fmt.Sprintf("%s/api/events?user_id=%d", srv.Base, stranger), "", &list); st != 200 || len(list) != 0 {
		t.Errorf("user %d's events after the refused POST: %d %d events, want none", stranger, st, len(list))
	}

	// The process logged each request without a credential for the
	// operator: the allowed page's two, and the other page's GET, which
	// is a simple request: served, only its answer withheld from the page.
	if n := strings.Count(srv.Logs(), "request without a credential served"); n != 3 {
		t.Errorf("%d log lines for requests without a credential, want 3:\n%s", n, srv.Logs())
	}
}

// evalAwait evaluates a JavaScript expression in the page and awaits the
// promise it returns.
func evalAwait[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %.300s: %v\npage errors: %v", expr, err, b.pageErrors())
	}
	return v
}
