package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	httpapi "github.com/activityd/activityd/adapters/http"
	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/testenv"
)

// exportFixture is a SQLite store holding awkward events, and what the
// test knows of them.
type exportFixture struct {
	url    string
	store  ports.Store
	events []domain.Event // in recorded order
	// between is a time after the first three events and before the rest.
	between time.Time
}

// awkwardMetadata is metadata that CSV and JSON both have to escape.
var awkwardMetadata = []string{
	`{"quote":"say \"hi\", then go","csv":"a,b;c","nl":"line1\nline2\r\nline3"}`,
	`{"unicode":"héllo ☃ 😀 \u2028 ünï","nested":{"a":[1,{"b":null}],"c":true,"d":-1.5e3}}`,
	`{}`,
	`{"#export_complete":"1","leading":" spaced ","tab":"\t"}`,
	`{"empty":"","zero":0}`,
}

func newExportFixture(t *testing.T) *exportFixture {
	t.Helper()
	f := &exportFixture{url: testenv.SQLiteURL(t)}
	st, err := storage.Open(t.Context(), f.url, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.store = st
	uc := app.NewEvents(st, ports.SystemClock, domain.DefaultLimits())
	admin := domain.Principal{Name: "test", Scopes: []domain.Scope{domain.ScopeAdmin}}
	ins := []domain.NewEvent{
		{UserID: 1, Action: "login", Metadata: json.RawMessage(awkwardMetadata[0])},
		{UserID: 2, Action: "upload_file", Metadata: json.RawMessage(awkwardMetadata[1]), Legacy: domain.ActivityLogger},
		{UserID: 1, Action: "logout", Metadata: json.RawMessage(awkwardMetadata[2])},
		{UserID: 3, Action: "viewed", Metadata: json.RawMessage(awkwardMetadata[3]), Legacy: domain.ActivityLogger},
		{UserID: 1, Action: "login", Metadata: json.RawMessage(awkwardMetadata[4]), OccurredAt: "2001-02-03T04:05:06.789Z"},
	}
	for i, in := range ins {
		if i == 3 {
			time.Sleep(5 * time.Millisecond)
			f.between = time.Now().UTC()
			time.Sleep(5 * time.Millisecond)
		}
		e, _, err := uc.Record(t.Context(), admin, in)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		f.events = append(f.events, e)
		time.Sleep(2 * time.Millisecond) // distinct recorded_at
	}
	// One event in progress, one done.
	for i, to := range map[int]string{1: "IN_PROGRESS", 4: "IN_PROGRESS"} {
		e, err := uc.Transition(t.Context(), admin, f.events[i].ID.String(), to)
		if err != nil {
			t.Fatal(err)
		}
		f.events[i] = e
	}
	e, err := uc.Transition(t.Context(), admin, f.events[4].ID.String(), "DONE")
	if err != nil {
		t.Fatal(err)
	}
	f.events[4] = e
	return f
}

// export runs `activityd export args...` on the fixture's store.
func (f *exportFixture) export(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCLI(t, map[string]string{"DATABASE_URL": f.url, "LOG_LEVEL": "warn"}, append([]string{"export"}, args...)...)
}

// ids lists the events' ids, in order.
func ids(es []domain.Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID.String()
	}
	return out
}

// parseNDJSON checks an NDJSON export and returns its events' ids: every
// line but the last an event, the last the completion line counting them.
func parseNDJSON(t *testing.T, data string) []string {
	t.Helper()
	if !strings.HasSuffix(data, "\n") {
		t.Fatalf("NDJSON export does not end with a newline: %q", data)
	}
	lines := strings.Split(strings.TrimSuffix(data, "\n"), "\n")
	last := lines[len(lines)-1]
	if want := fmt.Sprintf(`{"export_complete":true,"count":%d}`, len(lines)-1); last != want {
		t.Fatalf("last line %q, want %q", last, want)
	}
	var got []string
	for _, l := range lines[:len(lines)-1] {
		var e struct {
			ID       string          `json:"id"`
			Metadata json.RawMessage `json:"metadata"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.ID == "" {
			t.Fatalf("line %q: %v", l, err)
		}
		got = append(got, e.ID)
	}
	return got
}

var csvHeader = []string{"id", "user_id", "action", "status", "occurred_at", "recorded_at", "updated_at", "metadata", "legacy_system", "legacy_id"}

// parseCSV checks a CSV export and returns its rows after the header: the
// last line must be the completion line counting them.
func parseCSV(t *testing.T, data string) [][]string {
	t.Helper()
	r := csv.NewReader(strings.NewReader(data))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("CSV export does not parse: %v\n%s", err, data)
	}
	if len(recs) < 2 || !slices.Equal(recs[0], csvHeader) {
		t.Fatalf("CSV export: header %q", recs)
	}
	rows := recs[1 : len(recs)-1]
	// RFC 4180 lines end with CRLF; the completion line too.
	if want := fmt.Sprintf("\r\n#export_complete,%d\r\n", len(rows)); !strings.HasSuffix(data, want) {
		t.Fatalf("CSV export does not end with %q: %q", want, data[max(0, len(data)-80):])
	}
	return rows
}

// TestExportToFile: both formats, to a file, hold every event exactly as
// stored (awkward metadata, legacy ids), oldest first, then the
// completion line; nothing else is left in the directory.
func TestExportToFile(t *testing.T) {
	f := newExportFixture(t)
	for _, format := range []string{"ndjson", "csv"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "events."+format)
			code, stdout, stderr := f.export(t, "--output", out)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q: the export went to the file", stdout)
			}
			if !strings.Contains(stderr, "activityd export: store sqlite:") ||
				!strings.Contains(stderr, fmt.Sprintf("activityd export: %d events to %s (%s)", len(f.events), out, format)) {
				t.Errorf("stderr lacks the store or the summary:\n%s", stderr)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("directory holds %v, want only the export", entries)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if format == "ndjson" {
				if got := parseNDJSON(t, string(data)); !slices.Equal(got, ids(f.events)) {
					t.Errorf("ids %v, want %v", got, ids(f.events))
				}
				return
			}
			rows := parseCSV(t, string(data))
			if len(rows) != len(f.events) {
				t.Fatalf("%d rows, want %d", len(rows), len(f.events))
			}
			for i, e := range f.events {
				legacySystem, legacyID := "", ""
				if l, ok := e.ID.Legacy(); ok {
					legacySystem, legacyID = l.System.String(), fmt.Sprint(l.N)
				}
				want := []string{e.ID.String(), fmt.Sprint(e.UserID), string(e.Action), string(e.Status),
					e.OccurredAt.UTC().Format(time.RFC3339Nano), e.RecordedAt.UTC().Format(time.RFC3339Nano),
					e.UpdatedAt.UTC().Format(time.RFC3339Nano), string(e.Metadata), legacySystem, legacyID}
				if !slices.Equal(rows[i], want) {
					t.Errorf("row %d:\n got %q\nwant %q", i, rows[i], want)
				}
			}
		})
	}
}

// TestExportFilters: each filter flag selects what the API's parameter
// would, and the export to standard output ends with the completion line.
func TestExportFilters(t *testing.T) {
	f := newExportFixture(t)
	ev := f.events
	sel := func(is ...int) []string {
		var out []string
		for _, i := range is {
			out = append(out, ev[i].ID.String())
		}
		return out
	}
	between := f.between.Format(time.RFC3339Nano)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"everything", nil, sel(0, 1, 2, 3, 4)},
		{"user", []string{"--user", "1"}, sel(0, 2, 4)},
		{"action list", []string{"--action", "login,logout"}, sel(0, 2, 4)},
		{"action repeated", []string{"--action", "viewed", "--action=upload_file"}, sel(1, 3)},
		{"status", []string{"--status", "IN_PROGRESS"}, sel(1)},
		{"from", []string{"--from", between}, sel(3, 4)},
		{"to", []string{"--to", between}, sel(0, 1, 2)},
		{"newest first", []string{"--order", "desc", "--user", "1"}, sel(4, 2, 0)},
		{"together", []string{"--user=1", "--action=login", "--status=DONE", "--from", between}, sel(4)},
		{"nothing matches", []string{"--user", "99"}, nil},
		{"progress on", []string{"--progress=on"}, sel(0, 1, 2, 3, 4)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := f.export(t, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if got := parseNDJSON(t, stdout); !slices.Equal(got, tc.want) {
				t.Errorf("ids %v, want %v", got, tc.want)
			}
			if !strings.Contains(stderr, fmt.Sprintf("%d events to standard output (ndjson)", len(tc.want))) {
				t.Errorf("stderr lacks the summary:\n%s", stderr)
			}
			// A progress line only when asked (stderr is no terminal here).
			if progress := strings.Contains(stderr, "\rexported 1 events ("); progress != slices.Contains(tc.args, "--progress=on") {
				t.Errorf("progress line %v:\n%q", progress, stderr)
			}
		})
	}
}

// TestExportFormatAndGzip: the format follows the extension unless
// --format says otherwise; --gzip or .gz compresses the same bytes.
func TestExportFormatAndGzip(t *testing.T) {
	f := newExportFixture(t)
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.csv")
	if code, _, stderr := f.export(t, "--output", plain); code != 0 {
		t.Fatal(stderr)
	}
	want, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	parseCSV(t, string(want))
	for _, tc := range []struct {
		name string
		args []string
		file string
	}{
		{".csv.gz", nil, "a.csv.gz"},
		{"--gzip", []string{"--gzip"}, "b.csv"},
		{"--format over the extension", []string{"--format", "csv", "--gzip"}, "c.out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.file)
			if code, _, stderr := f.export(t, append(tc.args, "--output", out)...); code != 0 {
				t.Fatal(stderr)
			}
			z, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer z.Close()
			zr, err := gzip.NewReader(z)
			if err != nil {
				t.Fatalf("not gzip: %v", err)
			}
			got, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("decompressed export differs from the plain one:\n%s\n---\n%s", got, want)
			}
		})
	}
	// Another extension is NDJSON.
	out := filepath.Join(dir, "events.txt")
	if code, _, stderr := f.export(t, "--output", out); code != 0 {
		t.Fatal(stderr)
	}
	data, _ := os.ReadFile(out)
	parseNDJSON(t, string(data))
}

// TestExportSameBytesAsAPI: the command writes exactly what GET
// /v1/events/export answers for the same filters, in both formats.
func TestExportSameBytesAsAPI(t *testing.T) {
	f := newExportFixture(t)
	srv := httpapi.NewServer(httpapi.Config{Events: app.NewEvents(f.store, ports.SystemClock, domain.DefaultLimits()), AuthDisabled: true})
	for _, tc := range []struct {
		name  string
		args  []string
		query string
	}{
		{"ndjson", []string{"--format", "ndjson"}, "format=ndjson"},
		{"csv", []string{"--format", "csv"}, "format=csv"},
		{"csv filtered", []string{"--format", "csv", "--user", "1", "--action", "login,logout", "--order", "desc"},
			"format=csv&user_id=1&action=login,logout&order=desc"},
		{"nothing matches", []string{"--format", "csv", "--user", "99"}, "format=csv&user_id=99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := f.export(t, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/events/export?"+tc.query, nil))
			if rec.Code != 200 {
				t.Fatalf("GET /v1/events/export?%s: %d %s", tc.query, rec.Code, rec.Body)
			}
			if stdout != rec.Body.String() {
				t.Errorf("activityd export %s:\n%s\nGET /v1/events/export?%s:\n%s", strings.Join(tc.args, " "), stdout, tc.query, rec.Body)
			}
		})
	}
}

// failingStore hands out one page that claims more follow, then fails.
type failingStore struct {
	ports.Events
	calls   int
	onFail  func()
	failure error
}

func (s *failingStore) List(ctx context.Context, f domain.Filter) (domain.Page, error) {
	s.calls++
	if s.calls > 1 {
		if s.onFail != nil {
			s.onFail()
		}
		return domain.Page{}, s.failure
	}
	p, err := s.Events.List(ctx, f)
	p.Next = &domain.Cursor{}
	return p, err
}

// TestExportCutShort: an export that fails half-way is written to
// FILE.tmp, never to FILE: FILE keeps an earlier complete export, and the
// .tmp file is removed.
func TestExportCutShort(t *testing.T) {
	f := newExportFixture(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "events.ndjson")
	earlier := "an earlier complete export\n"
	if err := os.WriteFile(out, []byte(earlier), 0o644); err != nil {
		t.Fatal(err)
	}
	var tmpSeen, fileKept bool
	st := &failingStore{Events: f.store, failure: errors.New("connection lost")}
	st.onFail = func() {
		_, err := os.Stat(out + ".tmp")
		tmpSeen = err == nil
		data, _ := os.ReadFile(out)
		fileKept = string(data) == earlier
	}
	opts, err := parseExportArgs([]string{"--output", out}, domain.DefaultLimits(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	run := &exportRun{opts: opts, events: app.NewEvents(st, ports.SystemClock, domain.DefaultLimits()), began: time.Now()}
	n, err := run.run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("export of a failing store: %d, %v", n, err)
	}
	if n != len(f.events) {
		t.Errorf("%d events written before the failure, want %d", n, len(f.events))
	}
	if !tmpSeen || !fileKept {
		t.Errorf("while exporting: %s.tmp written %v, earlier file untouched %v", out, tmpSeen, fileKept)
	}
	if data, _ := os.ReadFile(out); string(data) != earlier {
		t.Errorf("%s after a failed export: %q", out, data)
	}
	if _, err := os.Stat(out + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s.tmp left behind: %v", out, err)
	}

	// Through the command: status 1, the error said.
	var stdout bytes.Buffer
	run = &exportRun{opts: exportOptions{format: "csv", query: domain.Query{Order: "asc"}},
		events: app.NewEvents(&failingStore{Events: f.store, failure: errors.New("gone")}, ports.SystemClock, domain.DefaultLimits()),
		stdout: &stdout, began: time.Now()}
	if _, err := run.run(t.Context()); err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(stdout.String(), "#export_complete") {
		t.Errorf("a cut export to standard output ends with the completion line:\n%s", stdout.String())
	}
}

// TestExportUsage: bad flags are usage errors (status 2) naming the
// flag, found before any store is opened or created.
func TestExportUsage(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "none.db")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"format", []string{"--format", "xml"}, "--format=xml"},
		{"from", []string{"--from", "yesterday"}, "--from"},
		{"to", []string{"--to", "2024-13-01T00:00:00Z"}, "--to"},
		{"from after to", []string{"--from", "2024-02-01T00:00:00Z", "--to", "2024-01-01T00:00:00Z"}, "--"},
		{"user", []string{"--user", "abc"}, "--user"},
		{"user zero", []string{"--user", "0"}, "--user"},
		{"status", []string{"--status", "FINISHED"}, "--status"},
		{"action", []string{"--action", "Not An Action!"}, "--action"},
		{"order", []string{"--order", "sideways"}, "--order"},
		{"progress", []string{"--progress", "maybe"}, "--progress"},
		{"unknown flag", []string{"--limit", "5"}, "limit"},
		{"argument", []string{"events.csv"}, `"events.csv"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, map[string]string{"DATABASE_URL": "sqlite:" + db}, append([]string{"export"}, tc.args...)...)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, stderr)
			}
			if stdout != "" || !strings.Contains(stderr, tc.want) {
				t.Errorf("stdout %q; stderr lacks %q:\n%s", stdout, tc.want, stderr)
			}
			if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a usage error opened the store: %v", err)
			}
		})
	}
	// The usage names the command.
	if code, out, _ := runCLI(t, nil, "help"); code != 0 || !strings.Contains(out, "export") || !strings.Contains(out, "activityd export -h") {
		t.Errorf("activityd help does not list export:\n%s", out)
	}
}
