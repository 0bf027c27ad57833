package httpapi_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/testenv"
)

// The export API runs on every store: each subtest opens its own.
func TestExport(t *testing.T) {
	for _, s := range []struct {
		name string
		open newStoreFunc
	}{{"memory", memoryStore}, {"sqlite", sqliteStore}, {"postgres", pgStore}} {
		t.Run(s.name, func(t *testing.T) { exportSuite(t, s.open) })
	}
}

// awkward is metadata that CSV and JSON must both carry intact: quotes,
// commas, newlines, a carriage return, unicode beyond the BMP, nesting.
const awkward = `{"note":"said \"hi\", then left\nline two\r\nend","unicode":"héllo ☃ 😀","nested":{"list":[1,2.5,{"deep":null}],"empty":{}},"html":"<b>&</b>"}`

// awkwardStored is awkward as stored and rendered: the domain's canonical
// form (keys sorted, <, > and & escaped as encoding/json does).
const awkwardStored = `{"html":"\u003cb\u003e\u0026\u003c/b\u003e","nested":{"empty":{},"list":[1,2.5,{"deep":null}]},"note":"said \"hi\", then left\nline two\r\nend","unicode":"héllo ☃ 😀"}`

// csvQuote quotes s as RFC 4180 does.
func csvQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

var exportNameRE = regexp.MustCompile(`^attachment; filename="activityd-events-[0-9]{8}T[0-9]{6}Z\.(ndjson|csv)"$`)

// exportLines splits an export body into lines, each without its "\n"
// (NDJSON) or "\r\n" (CSV), and checks it ends with one.
func exportLines(t *testing.T, body []byte, format string) []string {
	t.Helper()
	eol := map[string]string{"ndjson": "\n", "csv": "\r\n"}[format]
	if !bytes.HasSuffix(body, []byte(eol)) {
		t.Fatalf("export body does not end with %q: %q", eol, body)
	}
	return strings.Split(strings.TrimSuffix(string(body), eol), eol)
}

// checkComplete checks an export answer's headers and its completion
// line and trailer for n events, and returns the lines before it.
func checkComplete(t *testing.T, r *response, format string, n int) []string {
	t.Helper()
	r.want(http.StatusOK)
	ct := map[string]string{"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8; header=present"}[format]
	if got := r.hdr.Get("Content-Type"); got != ct {
		t.Fatalf("Content-Type %q, want %q", got, ct)
	}
	if cd := r.hdr.Get("Content-Disposition"); !exportNameRE.MatchString(cd) || !strings.HasSuffix(cd, "."+format+`"`) {
		t.Fatalf("Content-Disposition %q", cd)
	}
	if r.hdr.Get("Trailer") != "Export-Complete" || r.hdr.Get("Export-Complete") != strconv.Itoa(n) {
		t.Fatalf("Trailer %q, Export-Complete %q; want Export-Complete: %d", r.hdr.Get("Trailer"), r.hdr.Get("Export-Complete"), n)
	}
	lines := exportLines(t, r.body, format)
	last := lines[len(lines)-1]
	want := fmt.Sprintf(`{"export_complete":true,"count":%d}`, n)
	if format == "csv" {
		want = fmt.Sprintf("#export_complete,%d", n)
	}
	if last != want {
		t.Fatalf("last line %q, want %q", last, want)
	}
	return lines[:len(lines)-1]
}

// seed records n events for user through the use cases, in batches.
func seed(t *testing.T, st ports.Store, clock ports.Clock, user int64, n int) {
	t.Helper()
	events := app.NewEvents(st, clock, domain.DefaultLimits())
	p := domain.Principal{Name: "seed", Scopes: []domain.Scope{domain.ScopeAdmin}}
	for n > 0 {
		batch := make([]domain.NewEvent, min(n, app.MaxBatch))
		for i := range batch {
			batch[i] = domain.NewEvent{UserID: user, Action: "login", Metadata: json.RawMessage(`{"i":` + strconv.Itoa(n-i) + `}`)}
		}
		items, err := events.RecordBatch(context.Background(), p, batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.Err != nil {
				t.Fatal(it.Err)
			}
		}
		n -= len(batch)
	}
}

func exportSuite(t *testing.T, newStore newStoreFunc) {
	t.Run("byte-exact NDJSON and CSV", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u1 := cf.user(1)
		plain := cf.call("POST", "/v1/events", u1, `{"action":"login","occurred_at":"2025-10-01T08:00:00.5Z","metadata":`+awkward+`}`).want(201).event()
		logged := cf.call("POST", "/api/logs/", u1, `{"action":"logout","metadata":{"a,b":"c\"d"}}`).logEntry(http.StatusCreated)
		cf.call("POST", "/v1/events", cf.user(2), `{"action":"login"}`).want(201)

		// NDJSON: each line is the event exactly as the /v1 listing renders it.
		list := cf.call("GET", "/v1/users/1/events?order=asc", u1, "").want(200)
		var page struct{ Items []json.RawMessage }
		if err := json.Unmarshal(list.body, &page); err != nil || len(page.Items) != 2 {
			t.Fatalf("list: %s (%v)", list, err)
		}
		for _, path := range []string{"/v1/events/export", "/v1/users/1/events/export", "/v1/events/export?format=ndjson"} {
			lines := checkComplete(t, cf.call("GET", path, u1, ""), "ndjson", 2)
			if len(lines) != 2 || lines[0] != string(page.Items[0]) || lines[1] != string(page.Items[1]) {
				t.Fatalf("GET %s: lines\n%s\nwant the listing's items\n%s\n%s", path, strings.Join(lines, "\n"), page.Items[0], page.Items[1])
			}
		}
		if !strings.Contains(string(page.Items[0]), `"metadata":`+awkwardStored+`}`) {
			t.Fatalf("metadata not carried byte for byte: %s", page.Items[0])
		}
		if !strings.Contains(string(page.Items[1]), `"legacy":{"system":"activity-logger","id":`) {
			t.Fatalf("the logged event has no legacy id: %s", page.Items[1])
		}

		// CSV, built by hand from the stored events.
		a, b := cf.get(plain.ID), cf.get(logged.ID.String())
		ts := domain.FormatTime
		lid, _ := b.ID.Legacy()
		want := "id,user_id,action,status,occurred_at,recorded_at,updated_at,metadata,legacy_system,legacy_id\r\n" +
			a.ID.String() + ",1,login,PENDING,2025-10-01T08:00:00.5Z," + ts(a.RecordedAt) + "," + ts(a.UpdatedAt) + "," + csvQuote(awkwardStored) + ",,\r\n" +
			b.ID.String() + ",1,logout,PENDING," + ts(b.OccurredAt) + "," + ts(b.RecordedAt) + "," + ts(b.UpdatedAt) + `,"{""a,b"":""c\""d""}",activity-logger,` + strconv.FormatInt(lid.N, 10) + "\r\n" +
			"#export_complete,2\r\n"
		for _, rq := range []struct{ path, accept string }{
			{"/v1/events/export?format=csv", ""},
			{"/v1/events/export", "text/csv"},
			{"/v1/events/export", "application/x-ndjson;q=0, text/csv;q=0.5"},
			{"/v1/users/1/events/export?format=csv", "application/x-ndjson"},
		} {
			r := cf.call("GET", rq.path, u1, "", "Accept", rq.accept)
			checkComplete(t, r, "csv", 2)
			if string(r.body) != want {
				t.Fatalf("GET %s (Accept %q):\n%q\nwant\n%q", rq.path, rq.accept, r.body, want)
			}
		}
	})

	t.Run("every filter selects what the listing does", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u1, u2 := cf.user(1), cf.user(2)
		var ids []string
		for i, a := range []string{"login", "logout", "upload_file", "login", "deleted", "login"} {
			tok := u1
			if i%3 == 2 {
				tok = u2
			}
			occurred := time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(5-i) * time.Hour).Format(time.RFC3339)
			ids = append(ids, cf.call("POST", "/v1/events", tok, `{"action":"`+a+`","occurred_at":"`+occurred+`"}`).want(201).event().ID)
		}
		cf.call("PATCH", "/v1/events/"+ids[0], u1, `{"status":"IN_PROGRESS"}`).want(200)
		cf.call("PATCH", "/v1/events/"+ids[3], u1, `{"status":"IN_PROGRESS"}`).want(200)
		cf.call("PATCH", "/v1/events/"+ids[3], u1, `{"status":"DONE"}`).want(200)
		mid := domain.FormatTime(cf.get(ids[3]).RecordedAt)
		for _, q := range []string{
			"", "order=asc", "order=desc", "action=login", "action=login,logout", "action=login&action=deleted",
			"status=PENDING", "status=IN_PROGRESS", "status=DONE", "from=" + mid, "to=" + mid, "from=" + mid + "&to=" + mid,
			"time_field=occurred_at", "time_field=occurred_at&order=desc", "time_field=occurred_at&from=2025-10-01T02:00:00Z",
			"time_field=occurred_at&to=2025-10-01T03:00:00Z", "user_id=2", "user_id=1&action=login&status=PENDING",
		} {
			for _, route := range []string{"/v1/events", "/v1/users/2/events"} {
				if route != "/v1/events" && strings.Contains(q, "user_id") {
					continue
				}
				lq := q
				if !strings.Contains(q, "order=") {
					lq += "&order=asc" // the export's default
				}
				list := cf.call("GET", route+"?limit=1000&"+lq, cf.admin, "").want(200).list()
				var want []string
				for _, e := range list.Items {
					want = append(want, e.ID)
				}
				lines := checkComplete(t, cf.call("GET", route+"/export?"+q, cf.admin, ""), "ndjson", len(want))
				var got []string
				for _, l := range lines {
					var e struct{ ID string }
					if err := json.Unmarshal([]byte(l), &e); err != nil {
						t.Fatal(err)
					}
					got = append(got, e.ID)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s/export?%s = %v, want %v", route, q, got, want)
				}
			}
		}
	})

	t.Run("ownership", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		cf.call("POST", "/v1/events", cf.user(1), `{"action":"login"}`).want(201)
		cf.call("POST", "/v1/events", cf.user(2), `{"action":"login"}`).want(201)
		u1 := cf.user(1)
		cf.call("GET", "/v1/users/2/events/export", u1, "").problem(http.StatusForbidden)
		cf.call("GET", "/v1/events/export?user_id=2", u1, "").problem(http.StatusForbidden)
		cf.call("GET", "/v1/events/export", cf.user(1, domain.ScopeWrite), "").problem(http.StatusForbidden)
		cf.call("GET", "/v1/events/export", "", "").problem(http.StatusUnauthorized)
		cf.call("GET", "/v1/users/0/events/export", u1, "").problem(http.StatusNotFound)
		lines := checkComplete(t, cf.call("GET", "/v1/events/export", u1, ""), "ndjson", 1)
		if !strings.Contains(lines[0], `"user_id":1,`) {
			t.Fatalf("user 1's export: %s", lines[0])
		}
		checkComplete(t, cf.call("GET", "/v1/events/export", cf.admin, ""), "ndjson", 2)
	})

	t.Run("bad parameters", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		u1 := cf.user(1)
		for q, field := range map[string]string{"format=xml": "format", "order=up": "order", "status=LOST": "status", "from=yesterday": "from"} {
			if p := cf.call("GET", "/v1/events/export?"+q, u1, "").problem(http.StatusUnprocessableEntity); len(p.Errors) != 1 || p.Errors[0].Field != field {
				t.Fatalf("?%s: %+v, want a problem naming %s", q, p, field)
			}
		}
		for _, q := range []string{"limit=10", "cursor=abc", "format=csv&format=ndjson"} {
			cf.call("GET", "/v1/events/export?"+q, u1, "").problem(http.StatusBadRequest)
		}
	})

	t.Run("many pages, in order, gzip", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		const total = 2*app.ExportPageSize + 500
		seed(t, cf.st, cf.clock, 1, total)
		want := storedIn(t, cf.st)
		if len(want) != total {
			t.Fatalf("seeded %d events, want %d", len(want), total)
		}
		plain := cf.call("GET", "/v1/events/export", cf.admin, "")
		lines := checkComplete(t, plain, "ndjson", total)
		seen := map[string]bool{}
		for i, l := range lines {
			var e struct{ ID string }
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatal(err)
			}
			if seen[e.ID] || e.ID != want[i].ID.String() {
				t.Fatalf("line %d is %s (seen before: %v), want %s", i, e.ID, seen[e.ID], want[i].ID)
			}
			seen[e.ID] = true
		}
		for _, ae := range []string{"gzip", "br, gzip;q=0.5", "x-gzip"} {
			zipped := cf.call("GET", "/v1/events/export", cf.admin, "", "Accept-Encoding", ae)
			if zipped.hdr.Get("Content-Encoding") != "gzip" {
				t.Fatalf("Accept-Encoding %q: Content-Encoding %q", ae, zipped.hdr.Get("Content-Encoding"))
			}
			zr, err := gzip.NewReader(bytes.NewReader(zipped.body))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(body, plain.body) {
				t.Fatalf("Accept-Encoding %q: gunzipped body differs from the plain one (%d vs %d bytes, %v)", ae, len(body), len(plain.body), err)
			}
			if zipped.hdr.Get("Export-Complete") != strconv.Itoa(total) {
				t.Fatalf("gzipped export: trailer %q", zipped.hdr.Get("Export-Complete"))
			}
		}
		if r := cf.call("GET", "/v1/events/export", cf.admin, "", "Accept-Encoding", "gzip;q=0, identity"); r.hdr.Get("Content-Encoding") != "" {
			t.Fatalf("gzip;q=0 answered with Content-Encoding %q", r.hdr.Get("Content-Encoding"))
		}
	})

	t.Run("empty", func(t *testing.T) {
		cf := newCompatFixture(t, newStore)
		if lines := checkComplete(t, cf.call("GET", "/v1/events/export?format=csv", cf.admin, ""), "csv", 0); len(lines) != 1 || lines[0] != strings.Join(httpapi.CSVColumns, ",") {
			t.Fatalf("empty CSV export: %q", lines)
		}
		if lines := checkComplete(t, cf.call("GET", "/v1/events/export", cf.admin, ""), "ndjson", 0); len(lines) != 0 {
			t.Fatalf("empty NDJSON export: %q", lines)
		}
	})
}

// failingList is a store whose List fails once ok calls have succeeded.
type failingList struct {
	*memory.Store
	ok atomic.Int32
}

func (f *failingList) List(ctx context.Context, fl domain.Filter) (domain.Page, error) {
	if f.ok.Add(-1) < 0 {
		return domain.Page{}, errors.New("disk on fire")
	}
	return f.Store.List(ctx, fl)
}

// TestExportCut: a store failing after the first page cuts the export
// where a client sees it: no completion line, no trailer, and the body
// ends in a transfer error rather than cleanly. Before the first event,
// the failure is an ordinary problem answer.
func TestExportCut(t *testing.T) {
	var fl *failingList
	f := newFixture(t, withStore(func(s *memory.Store) ports.Events {
		fl = &failingList{Store: s}
		fl.ok.Store(1 << 30)
		return fl
	}))
	early := testenv.NewClock(t0.Add(-time.Hour)) // before the server's clock: in the export's range
	early.SetStep(time.Microsecond)
	seed(t, f.store, early, 1, app.ExportPageSize+10)
	srv := httptest.NewServer(f.srv)
	defer srv.Close()
	get := func(format string) (*http.Response, []byte, error) {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/events/export?format="+format, nil)
		req.Header.Set("Authorization", "Bearer "+f.admin)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}

	resp, body, err := get("ndjson")
	if err != nil || resp.StatusCode != 200 || resp.Trailer.Get("Export-Complete") != strconv.Itoa(app.ExportPageSize+10) {
		t.Fatalf("whole export: %d, trailer %v, %v", resp.StatusCode, resp.Trailer, err)
	}
	if !bytes.HasSuffix(body, []byte(`{"export_complete":true,"count":1010}`+"\n")) {
		t.Fatalf("whole export ends %q", body[max(0, len(body)-80):])
	}

	for _, format := range []string{"ndjson", "csv"} {
		fl.ok.Store(1)
		resp, body, err = get(format)
		if err == nil || resp.StatusCode != 200 {
			t.Fatalf("%s: cut export read to its end: %d, %v", format, resp.StatusCode, err)
		}
		if resp.Trailer.Get("Export-Complete") != "" || bytes.Contains(body, []byte("export_complete")) {
			t.Fatalf("%s: cut export claims completion: trailer %v, body ends %q", format, resp.Trailer, body[max(0, len(body)-80):])
		}
		n := 0
		for sc := bufio.NewScanner(bytes.NewReader(body)); sc.Scan(); n++ {
		}
		if want := app.ExportPageSize + map[string]int{"ndjson": 0, "csv": 1}[format]; n != want {
			t.Fatalf("%s: cut export has %d lines, want the first page's %d", format, n, want)
		}
	}
	if !strings.Contains(f.logs.String(), "export cut short") {
		t.Fatalf("the cut is not logged: %s", f.logs)
	}

	fl.ok.Store(0)
	f.do("GET", "/v1/events/export", f.admin, "").problem(http.StatusInternalServerError)
}
