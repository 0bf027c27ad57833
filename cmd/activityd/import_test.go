package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/predecessors"
	"github.com/activityd/activityd/test/testenv"
)

// target is a store activityd import writes into.
type target struct {
	name string
	url  func(t *testing.T) string
}

var targets = []target{
	{"sqlite", func(t *testing.T) string { return testenv.SQLiteURL(t) }},
	{"postgres", func(t *testing.T) string { u, _ := testenv.PostgresSchema(t); return u }},
}

// runImport runs `activityd import args...` into the store at dbURL and
// returns its exit status and what it printed.
func runImport(t *testing.T, dbURL string, args ...string) (int, string, string) {
	t.Helper()
	env := map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn"}
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), append([]string{"import"}, args...), envOf(env), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// openTarget opens the store an import wrote to.
func openTarget(t *testing.T, url string) ports.Store {
	t.Helper()
	st, err := storage.Open(t.Context(), url, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// allEvents lists every event of the store, oldest recorded first.
func allEvents(t *testing.T, st ports.Store) []domain.Event {
	t.Helper()
	page, err := st.List(t.Context(), domain.Filter{Limit: domain.MaxLimit, Order: domain.Asc})
	if err != nil {
		t.Fatal(err)
	}
	return page.Events
}

// wantEvent is an imported event as the test expects it, worked out by
// hand from the fixture.
type wantEvent struct {
	legacy             domain.LegacyID
	user               int64
	action             domain.Action
	status             domain.Status
	occurred, recorded time.Time
	metadata           string
}

func checkImported(t *testing.T, st ports.Store, want []wantEvent) {
	t.Helper()
	got := allEvents(t, st)
	if len(got) != len(want) {
		t.Fatalf("%d events stored, want %d: %+v", len(got), len(want), got)
	}
	byID := map[domain.ID]domain.Event{}
	for _, e := range got {
		byID[e.ID] = e
	}
	for _, w := range want {
		e, ok := byID[w.legacy.ID()]
		if !ok {
			t.Errorf("%v not stored", w.legacy)
			continue
		}
		if l, _ := e.ID.Legacy(); l != w.legacy || e.UserID != w.user || e.Action != w.action || e.Status != w.status ||
			!e.OccurredAt.Equal(w.occurred) || !e.RecordedAt.Equal(w.recorded) || !e.UpdatedAt.Equal(w.recorded) {
			t.Errorf("%v: stored %+v\nwant %+v", w.legacy, e, w)
		}
		if !sameJSONText(e.Metadata, []byte(w.metadata)) {
			t.Errorf("%v: metadata %s, want %s", w.legacy, e.Metadata, w.metadata)
		}
		h, err := st.History(t.Context(), e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if last := h[len(h)-1]; last.To != w.status || !strings.HasPrefix(last.By, "import:") || len(h) != 1+len(domain.StepsTo(w.status, w.recorded, "")) {
			t.Errorf("%v: history %+v", w.legacy, h)
		}
	}
}

func sameJSONText(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && fmt.Sprint(x) == fmt.Sprint(y)
}

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05.999999", s)
	if err != nil {
		panic(err)
	}
	return t
}

// loggerWant is what importing predecessors.AwkwardLogs keeps: the rows
// that break no rule (rows 9, 10, 11, 20 and, on SQLite, 21 and 22 do).
func loggerWant() []wantEvent {
	al := func(n int64) domain.LegacyID { return domain.LegacyID{System: domain.ActivityLogger, N: n} }
	at := func(s string) (time.Time, time.Time) { return utc(s), utc(s) }
	w := []wantEvent{
		{legacy: al(1), user: 1, action: "login", status: domain.StatusPending, metadata: `{"device":"Chrome","ip":"192.168.0.1"}`},
		{legacy: al(2), user: 6, action: "logout", status: domain.StatusInProgress,
			metadata: `{"device":{"os":"iOS","version":17},"geo":{"lat":48.85,"lon":2.35},"tags":["a","b"]}`},
		{legacy: al(5), user: predecessors.UserOver2p31, action: "upload_file", status: domain.StatusDone, metadata: `{}`},
		{legacy: al(6), user: predecessors.User2p40, action: "created", status: domain.StatusPending, metadata: `{}`},
		{legacy: al(30), user: 1, action: "upload_file", status: domain.StatusDone, metadata: `{"file":"report.pdf","size":1024}`},
	}
	for i, s := range []string{"2025-10-10 18:30:00.123456", "2025-10-10 19:00:00", "2025-10-11 02:45:30",
		"2025-10-12 07:59:59.5", "2025-10-14 09:00:00"} {
		w[i].occurred, w[i].recorded = at(s)
	}
	return w
}

// TestImportActivityLogger: the Django service's database, SQLite or
// PostgreSQL, into a SQLite or PostgreSQL store: every field, the refusal
// report, nothing imported while a row is refused under the default
// --refused=stop, the log numbers reserved, the tokens working with the
// same secret, the counts recomputed, and a re-run that imports nothing
// twice.
func TestImportActivityLogger(t *testing.T) {
	sources := []struct {
		name  string
		build func(t *testing.T) (url string, refused int)
	}{
		{"from-sqlite", func(t *testing.T) (string, int) {
			path := filepath.Join(t.TempDir(), "db.sqlite3")
			predecessors.ActivityLoggerSQLite(t, path, predecessors.AwkwardLogs(), predecessors.AwkwardTokens())
			return "sqlite:" + path, 6
		}},
		{"from-postgres", func(t *testing.T) (string, int) {
			return predecessors.ActivityLoggerPostgres(t, predecessors.PostgresLogs(predecessors.AwkwardLogs()),
				predecessors.AwkwardTokens()), 4
		}},
	}
	for _, src := range sources {
		for _, tg := range targets {
			t.Run(src.name+"/into-"+tg.name, func(t *testing.T) {
				srcURL, refused := src.build(t)
				dbURL := tg.url(t)

				// A dry run and the default --refused=stop store nothing.
				code, out, errOut := runImport(t, dbURL, "--dry-run", "activity-logger", srcURL)
				if code != 0 || !strings.Contains(out, fmt.Sprintf("%-22s %d", "would be imported", 5)) ||
					!strings.Contains(out, fmt.Sprintf("%-22s %d", "refused", refused)) {
					t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
				}
				code, out, errOut = runImport(t, dbURL, "activity-logger", srcURL)
				if code != 1 || !strings.Contains(out, "nothing was imported") {
					t.Fatalf("--refused=stop: exit %d\n%s%s", code, out, errOut)
				}
				for _, reason := range []string{
					`activitylog_useractivitylog id=9: user_id: must be a positive 64-bit integer (got "0")`,
					`activitylog_useractivitylog id=10: `,
					`activitylog_useractivitylog id=11: metadata: must be a JSON object`,
					`activitylog_useractivitylog id=20: action: unknown action "dance"`,
				} {
					if !strings.Contains(out, reason) {
						t.Errorf("the report does not name %q:\n%s", reason, out)
					}
				}
				st := openTarget(t, dbURL)
				if n := len(allEvents(t, st)); n != 0 {
					t.Fatalf("--refused=stop stored %d events", n)
				}

				code, out, errOut = runImport(t, dbURL, "activity-logger", srcURL, "--refused=skip")
				if code != 0 {
					t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
				}
				for _, line := range []string{
					fmt.Sprintf("%-22s %d", "imported", 5), fmt.Sprintf("%-22s %d", "refused", refused),
					"3 imported, 0 already present, 0 refused",
				} {
					if !strings.Contains(out, line) {
						t.Errorf("summary lacks %q:\n%s", line, out)
					}
				}
				checkImported(t, st, loggerWant())

				// The tokens are the same secrets, bound to their users.
				tokens := app.NewTokens(st, ports.SystemClock)
				for _, tok := range predecessors.AwkwardTokens() {
					p, err := tokens.Authenticate(t.Context(), tok.Key)
					if err != nil || p.UserID != tok.UserID || !p.Has(domain.ScopeRead) || !p.Has(domain.ScopeWrite) || p.IsAdmin() {
						t.Errorf("token of user %d: %+v, %v", tok.UserID, p, err)
					}
				}
				// Numbers handed out from now on are above every old id.
				if n, err := st.NextLegacyID(t.Context()); err != nil || n <= 30 {
					t.Errorf("NextLegacyID after the import = %d, %v; want above 30", n, err)
				}

				// The windows holding imported events are counted (0 */4 * * *).
				checkCounts(t, st, map[string]int64{
					"1@2025-10-10T16:00:00Z": 1,
					"6@2025-10-10T16:00:00Z": 1,
					fmt.Sprintf("%d@2025-10-11T00:00:00Z", predecessors.UserOver2p31): 1,
					fmt.Sprintf("%d@2025-10-12T04:00:00Z", predecessors.User2p40):     1,
					"1@2025-10-14T08:00:00Z": 1,
				})

				// Again: nothing twice.
				code, out, errOut = runImport(t, dbURL, "activity-logger", srcURL, "--refused=skip")
				if code != 0 || !strings.Contains(out, fmt.Sprintf("%-22s %d", "imported", 0)) ||
					!strings.Contains(out, fmt.Sprintf("%-22s %d", "already present", 5)) ||
					!strings.Contains(out, "0 imported, 3 already present, 0 refused") {
					t.Fatalf("re-run: exit %d\n%s%s", code, out, errOut)
				}
				checkImported(t, st, loggerWant())
			})
		}
	}
}

// checkCounts compares the store's computed counts, as "user@window start"
// → total, with want.
func checkCounts(t *testing.T, st ports.Store, want map[string]int64) {
	t.Helper()
	page, err := st.ListCounts(t.Context(), domain.CountFilter{Order: domain.Asc, Limit: domain.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, c := range page.Counts {
		got[fmt.Sprintf("%d@%s", c.UserID, c.Start.Format(time.RFC3339))] = c.Total
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counts %v\nwant   %v", got, want)
	}
}

// TestImportEventTracking: the gin service's PostgreSQL database: occurred
// and stored times kept apart, created_at NULL read as the action's time,
// its integer ids kept as legacy ids, refusals reported.
func TestImportEventTracking(t *testing.T) {
	srcURL := predecessors.EventTrackingPostgres(t, predecessors.AwkwardEvents(), predecessors.AwkwardCounts())
	et := func(n int64) domain.LegacyID { return domain.LegacyID{System: domain.EventTracking, N: n} }
	want := []wantEvent{
		{legacy: et(1), user: 6, action: "deleted", occurred: utc("2025-10-10 18:30:00"), recorded: utc("2025-10-10 18:30:01.5"),
			metadata: `{"device":"iPhone 14","ip":"192.168.1.10"}`},
		{legacy: et(2), user: 1, action: "created", occurred: utc("2025-10-10 06:30:00"), recorded: utc("2025-10-10 06:30:00"),
			metadata: `{"device":{"build":{"major":14},"os":"Android"},"tags":[]}`},
		{legacy: et(4), user: predecessors.UserOver2p31, action: "viewed", occurred: utc("2025-10-11 16:00:00.123456"),
			recorded: utc("2025-10-11 16:00:01"), metadata: `{}`},
		{legacy: et(7), user: predecessors.User2p40, action: "login", occurred: utc("2025-10-12 09:00:00"),
			recorded: utc("2025-10-12 09:00:00.000001"), metadata: `{}`},
	}
	for i := range want {
		want[i].status = domain.StatusPending
	}
	for _, tg := range targets {
		t.Run("into-"+tg.name, func(t *testing.T) {
			dbURL := tg.url(t)
			code, out, errOut := runImport(t, dbURL, "--refused=skip", "event-tracking", srcURL)
			if code != 0 || !strings.Contains(out, fmt.Sprintf("%-22s %d", "imported", 4)) ||
				!strings.Contains(out, fmt.Sprintf("%-22s %d", "refused", 5)) ||
				!strings.Contains(out, "3 rows read, not imported") ||
				!strings.Contains(out, `events event_id=13: action: unknown action "dance"`) ||
				!strings.Contains(out, "events event_id=15: ") {
				t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
			}
			st := openTarget(t, dbURL)
			checkImported(t, st, want)
			checkCounts(t, st, map[string]int64{
				"6@2025-10-10T16:00:00Z": 1,
				"1@2025-10-10T04:00:00Z": 1,
				fmt.Sprintf("%d@2025-10-11T16:00:00Z", predecessors.UserOver2p31): 1,
				fmt.Sprintf("%d@2025-10-12T08:00:00Z", predecessors.User2p40):     1,
			})
			code, out, _ = runImport(t, dbURL, "--refused=skip", "event-tracking", srcURL)
			if code != 0 || !strings.Contains(out, fmt.Sprintf("%-22s %d", "already present", 4)) {
				t.Fatalf("re-run: exit %d\n%s", code, out)
			}
		})
	}
}

// TestImportResumesAndPages: more rows than a batch and a reader page; an
// import cut short (its context cancelled part way) is finished by running
// it again, and every row is stored exactly once.
func TestImportResumesAndPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.sqlite3")
	const n = 2500
	predecessors.ActivityLoggerSQLite(t, path, predecessors.ManyLogs(n), nil)
	dbURL := testenv.SQLiteURL(t)

	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr bytes.Buffer
	env := envOf(map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn"})
	cfg, err := loadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	// Cancel after the first batch is stored: the store's progress says when.
	go func() {
		st := openTarget(t, dbURL)
		for ctx.Err() == nil {
			if p, err := st.List(ctx, domain.Filter{Limit: 1}); err == nil && len(p.Events) > 0 {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	err = importCmd(ctx, cfg, []string{"--batch", "500", "activity-logger", "sqlite:" + path}, &stdout, &stderr, newLogger(cfg, &stderr))
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Logf("first run: %v\n%s", err, stdout.String())
	}
	st := openTarget(t, dbURL)
	first := len(allEvents(t, st))
	code, out, errOut := runImport(t, dbURL, "activity-logger", "sqlite:"+path)
	if code != 0 {
		t.Fatalf("second run: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, fmt.Sprintf("%-22s %d", "imported", n-first)) ||
		!strings.Contains(out, fmt.Sprintf("%-22s %d", "already present", first)) {
		t.Errorf("second run after %d stored:\n%s", first, out)
	}
	page, err := st.List(t.Context(), domain.Filter{Limit: domain.MaxLimit, Order: domain.Asc})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[domain.ID]bool{}
	total := 0
	for {
		for _, e := range page.Events {
			if seen[e.ID] {
				t.Fatalf("%s listed twice", e.ID)
			}
			seen[e.ID] = true
			total++
		}
		if page.Next == nil {
			break
		}
		if page, err = st.List(t.Context(), domain.Filter{Limit: domain.MaxLimit, Order: domain.Asc, After: page.Next}); err != nil {
			t.Fatal(err)
		}
	}
	if total != n {
		t.Fatalf("%d events stored, want %d", total, n)
	}
}

// TestImportArgs: the command line's mistakes are usage errors (exit 2).
func TestImportArgs(t *testing.T) {
	for _, args := range [][]string{
		{}, {"activity-logger"}, {"django", "sqlite:x"}, {"activity-logger", "sqlite:x", "extra"},
		{"--refused=maybe", "activity-logger", "sqlite:x"}, {"--batch", "0", "activity-logger", "sqlite:x"},
		{"--batch", "1001", "activity-logger", "sqlite:x"}, {"--progress=loud", "activity-logger", "sqlite:x"},
	} {
		if code, out, errOut := runImport(t, "memory:", args...); code != 2 {
			t.Errorf("import %v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
}
