package predecessor_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/predecessor"
	"github.com/activityd/activityd/test/predecessors"
)

// open opens a source, failing t on an error, and closes it when t ends.
func open(t *testing.T, kind predecessor.Kind, url string) *predecessor.Source {
	t.Helper()
	s, err := predecessor.Open(context.Background(), kind, url)
	if err != nil {
		t.Fatalf("Open(%s, %s): %v", kind, url, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if s.Kind() != kind {
		t.Errorf("Kind() = %q, want %q", s.Kind(), kind)
	}
	return s
}

// events reads every event row.
func events(t *testing.T, s *predecessor.Source) []predecessor.Row {
	t.Helper()
	var rows []predecessor.Row
	if err := s.Events(context.Background(), func(r predecessor.Row) error {
		rows = append(rows, r)
		return nil
	}); err != nil {
		t.Fatalf("Events: %v", err)
	}
	return rows
}

func sqlitePath(t *testing.T) string { return filepath.Join(t.TempDir(), "db.sqlite3") }

// wantLog is what the reader must return for an activity-logger row.
func wantLog(l predecessors.LogRow) predecessor.Row {
	r := predecessor.Row{
		Ref:        "activitylog_useractivitylog id=" + strconv.FormatInt(l.ID, 10),
		ID:         strconv.FormatInt(l.ID, 10),
		UserID:     strconv.FormatInt(l.UserID, 10),
		Action:     l.Action,
		Status:     l.Status,
		OccurredAt: l.Want,
		RecordedAt: l.Want,
	}
	if m, ok := predecessors.MetadataText(l.Metadata); ok {
		r.Metadata = json.RawMessage(m)
	}
	return r
}

// wantEvent is what the reader must return for an event-tracking row.
func wantEvent(e predecessors.EventRow) predecessor.Row {
	r := predecessor.Row{
		Ref:        "events event_id=" + e.ID,
		ID:         e.ID,
		UserID:     strconv.FormatInt(e.UserID, 10),
		Action:     e.Action,
		OccurredAt: e.WantOccurredAt,
		RecordedAt: e.WantRecordedAt,
	}
	if m, ok := predecessors.MetadataText(e.Metadata); ok {
		r.Metadata = json.RawMessage(m)
	}
	return r
}

// problemWanted names the column a row's Problem must mention, "" when
// the row must read without one.
type problemWanted func(i int) string

// compare checks every field of every row, in order. exactMeta asks for
// the metadata text byte for byte (SQLite, json columns); otherwise as the
// same JSON value (jsonb normalises the text). A row whose wanted
// OccurredAt is zero must carry a Problem naming timeCol.
func compare(t *testing.T, got, want []predecessor.Row, exactMeta bool, timeCol string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("read %d rows, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.Ref != w.Ref || g.ID != w.ID || g.UserID != w.UserID || g.Action != w.Action || g.Status != w.Status {
			t.Errorf("row %d = %+v, want %+v", i, g, w)
			continue
		}
		if w.OccurredAt.IsZero() {
			if !strings.Contains(g.Problem, timeCol) || !g.OccurredAt.IsZero() {
				t.Errorf("%s: Problem %q, OccurredAt %v; want a problem naming %s and no time", w.Ref, g.Problem, g.OccurredAt, timeCol)
			}
		} else {
			if g.Problem != "" {
				t.Errorf("%s: Problem %q, want none", w.Ref, g.Problem)
			}
			for _, tm := range []struct {
				name      string
				got, want time.Time
			}{{"OccurredAt", g.OccurredAt, w.OccurredAt}, {"RecordedAt", g.RecordedAt, w.RecordedAt}} {
				if !tm.got.Equal(tm.want) || tm.got.Location() != time.UTC {
					t.Errorf("%s: %s = %v, want %v in UTC", w.Ref, tm.name, tm.got, tm.want)
				}
			}
		}
		switch {
		case w.Metadata == nil || g.Metadata == nil:
			if (w.Metadata == nil) != (g.Metadata == nil) {
				t.Errorf("%s: Metadata = %q (nil %t), want %q (nil %t)", w.Ref, g.Metadata, g.Metadata == nil, w.Metadata, w.Metadata == nil)
			}
		case exactMeta:
			if !bytes.Equal(g.Metadata, w.Metadata) {
				t.Errorf("%s: Metadata = %s, want %s", w.Ref, g.Metadata, w.Metadata)
			}
		default:
			if !sameJSON(g.Metadata, w.Metadata) {
				t.Errorf("%s: Metadata = %s, want the JSON value %s", w.Ref, g.Metadata, w.Metadata)
			}
		}
	}
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func logsWant(logs []predecessors.LogRow) []predecessor.Row {
	logs = slices.Clone(logs)
	slices.SortFunc(logs, func(a, b predecessors.LogRow) int { return int(a.ID - b.ID) })
	var rows []predecessor.Row
	for _, l := range logs {
		rows = append(rows, wantLog(l))
	}
	return rows
}

func eventsWant(evs []predecessors.EventRow, byText bool) []predecessor.Row {
	evs = slices.Clone(evs)
	slices.SortFunc(evs, func(a, b predecessors.EventRow) int {
		if byText {
			return strings.Compare(a.ID, b.ID)
		}
		x, _ := strconv.ParseInt(a.ID, 10, 64)
		y, _ := strconv.ParseInt(b.ID, 10, 64)
		return int(x - y)
	})
	var rows []predecessor.Row
	for _, e := range evs {
		rows = append(rows, wantEvent(e))
	}
	return rows
}

func checkTokens(t *testing.T, s *predecessor.Source, want []predecessors.TokenRow) {
	t.Helper()
	var got []predecessor.Token
	if err := s.Tokens(context.Background(), func(tok predecessor.Token) error {
		got = append(got, tok)
		return nil
	}); err != nil {
		t.Fatalf("Tokens: %v", err)
	}
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b predecessors.TokenRow) int { return int(a.UserID - b.UserID) })
	if len(got) != len(want) {
		t.Fatalf("Tokens gave %d, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		user := strconv.FormatInt(w.UserID, 10)
		if g.Ref != "authtoken_token user_id="+user || g.Key != w.Key || g.UserID != user ||
			!g.Created.Equal(w.Want) || g.Created.Location() != time.UTC || g.Problem != "" {
			t.Errorf("token %d = %+v, want key %s, user %s, created %v", i, g, w.Key, user, w.Want)
		}
	}
}

func checkCounts(t *testing.T, s *predecessor.Source, want []predecessors.CountRow) {
	t.Helper()
	var got []predecessor.Count
	if err := s.Counts(context.Background(), func(c predecessor.Count) error {
		got = append(got, c)
		return nil
	}); err != nil {
		t.Fatalf("Counts: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("Counts gave %d, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Ref != fmt.Sprintf("user_event_counts id=%d", w.ID) || g.UserID != strconv.FormatInt(w.UserID, 10) ||
			g.Count != w.Count || !g.At.Equal(w.Want) || g.At.Location() != time.UTC || g.Problem != "" {
			t.Errorf("count %d = %+v, want %+v", i, g, w)
		}
	}
}

func checkTotals(t *testing.T, s *predecessor.Source, count, maxID int64) {
	t.Helper()
	ctx := context.Background()
	if n, err := s.CountEvents(ctx); err != nil || n != count {
		t.Errorf("CountEvents = %d, %v; want %d", n, err, count)
	}
	if n, err := s.MaxLegacyID(ctx); err != nil || n != maxID {
		t.Errorf("MaxLegacyID = %d, %v; want %d", n, err, maxID)
	}
}

// noCalls is a Tokens or Counts callback that must not be called.
func noCalls[T any](t *testing.T, what string) func(T) error {
	return func(v T) error {
		t.Errorf("%s called with %+v on a predecessor that has none", what, v)
		return nil
	}
}

func TestActivityLogger(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(t *testing.T, logs []predecessors.LogRow, tokens []predecessors.TokenRow) (url string, stored []predecessors.LogRow)
		exact bool
	}{
		{"sqlite", func(t *testing.T, logs []predecessors.LogRow, tokens []predecessors.TokenRow) (string, []predecessors.LogRow) {
			path := sqlitePath(t)
			predecessors.ActivityLoggerSQLite(t, path, logs, tokens)
			return "sqlite:" + path, logs
		}, true},
		{"postgres", func(t *testing.T, logs []predecessors.LogRow, tokens []predecessors.TokenRow) (string, []predecessors.LogRow) {
			return predecessors.ActivityLoggerPostgres(t, logs, tokens), predecessors.PostgresLogs(logs)
		}, false},
	} {
		t.Run(tc.name+"/awkward", func(t *testing.T) {
			url, stored := tc.build(t, predecessors.AwkwardLogs(), predecessors.AwkwardTokens())
			s := open(t, predecessor.ActivityLogger, url)
			compare(t, events(t, s), logsWant(stored), tc.exact, "timestamp")
			checkTotals(t, s, int64(len(stored)), 30)
			checkTokens(t, s, predecessors.AwkwardTokens())
			if err := s.Counts(context.Background(), noCalls[predecessor.Count](t, "Counts")); err != nil {
				t.Errorf("Counts: %v", err)
			}
		})
		t.Run(tc.name+"/pages", func(t *testing.T) {
			logs := predecessors.ManyLogs(2500)
			url, _ := tc.build(t, logs, nil)
			s := open(t, predecessor.ActivityLogger, url)
			compare(t, events(t, s), logsWant(logs), tc.exact, "timestamp")
			checkTotals(t, s, 2500, 4999)
			checkTokens(t, s, nil)
		})
		t.Run(tc.name+"/empty", func(t *testing.T) {
			url, _ := tc.build(t, nil, nil)
			s := open(t, predecessor.ActivityLogger, url)
			compare(t, events(t, s), nil, tc.exact, "timestamp")
			checkTotals(t, s, 0, 0)
		})
	}
}

func TestEventTrackingPostgres(t *testing.T) {
	small := slices.DeleteFunc(predecessors.AwkwardEvents(), func(e predecessors.EventRow) bool {
		return e.UserID > 1<<31-1
	})
	for _, tc := range []struct {
		name   string
		schema predecessors.EventSchema
		events []predecessors.EventRow
		maxID  int64
	}{
		{"default", predecessors.EventSchema{}, predecessors.AwkwardEvents(), 15},
		{"timestamptz json", predecessors.EventSchema{TimeZoned: true, JSONColumns: true}, predecessors.AwkwardEvents(), 15},
		{"uuid", predecessors.EventSchema{UUIDIDs: true}, predecessors.UUIDs(predecessors.AwkwardEvents()), 0},
		{"integer users", predecessors.EventSchema{IntUserIDs: true}, small, 15},
		{"pages", predecessors.EventSchema{}, predecessors.ManyEvents(2500), 3*2499 + 2},
		{"empty", predecessors.EventSchema{}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := predecessors.EventTrackingPostgresWith(t, tc.schema, tc.events, predecessors.AwkwardCounts())
			s := open(t, predecessor.EventTracking, url)
			compare(t, events(t, s), eventsWant(tc.events, tc.schema.UUIDIDs), tc.schema.JSONColumns, "event_action_timestamp")
			checkTotals(t, s, int64(len(tc.events)), tc.maxID)
			checkCounts(t, s, predecessors.AwkwardCounts())
			if err := s.Tokens(context.Background(), noCalls[predecessor.Token](t, "Tokens")); err != nil {
				t.Errorf("Tokens: %v", err)
			}
		})
	}
	t.Run("default url", func(t *testing.T) {
		url := predecessors.EventTrackingPostgres(t, predecessors.AwkwardEvents()[:2], nil)
		s := open(t, predecessor.EventTracking, url)
		compare(t, events(t, s), eventsWant(predecessors.AwkwardEvents()[:2], false), false, "event_action_timestamp")
		checkCounts(t, s, nil)
	})
}

func TestEventTrackingSQLite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []predecessors.EventRow
		byText bool
		maxID  int64
	}{
		{"awkward", predecessors.AwkwardEvents(), false, 15},
		{"uuid", predecessors.UUIDs(predecessors.AwkwardEvents()), true, 0},
		{"pages", predecessors.ManyEvents(2100), false, 3*2099 + 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := sqlitePath(t)
			predecessors.EventTrackingSQLite(t, path, tc.events, predecessors.AwkwardCounts())
			s := open(t, predecessor.EventTracking, "file:"+path)
			compare(t, events(t, s), eventsWant(tc.events, tc.byText), true, "event_action_timestamp")
			checkTotals(t, s, int64(len(tc.events)), tc.maxID)
			checkCounts(t, s, predecessors.AwkwardCounts())
		})
	}
}

// A row the reader cannot make whole still reaches fn, saying why.
func TestProblems(t *testing.T) {
	path := sqlitePath(t)
	predecessors.EventTrackingSQLite(t, path, nil, nil)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO events VALUES
		(1, NULL, '2025-10-10 18:30:00', 'login', '{}', NULL),
		(2, 6, NULL, NULL, NULL, 'yesterday'),
		(3, 'six', '2025-10-10 18:30:00', 'login', '', '2025-10-10 18:31:00');
		INSERT INTO user_event_counts VALUES (1, 6, 'many', '2025-10-10'), (2, 6, 3, '2025-10-10 20:00:00')`); err != nil {
		t.Fatal(err)
	}
	s := open(t, predecessor.EventTracking, "sqlite://"+path)
	rows := events(t, s)
	for i, want := range [][]string{
		{"user_id is NULL"},
		{"event_action_timestamp is NULL", "action is NULL", `created_at: time "yesterday" does not parse`},
		nil,
	} {
		if i >= len(rows) {
			t.Fatalf("read %d rows, want 3", len(rows))
		}
		for _, w := range want {
			if !strings.Contains(rows[i].Problem, w) {
				t.Errorf("row %d: Problem %q, want it to say %q", i, rows[i].Problem, w)
			}
		}
		if want == nil && rows[i].Problem != "" {
			t.Errorf("row %d: Problem %q, want none", i, rows[i].Problem)
		}
	}
	// Text in an integer column and empty metadata text reach the rules as stored.
	if r := rows[2]; r.UserID != "six" || r.Metadata == nil || len(r.Metadata) != 0 {
		t.Errorf("row 3 = user %q, metadata %q (nil %t); want user six and empty, non-nil metadata", r.UserID, r.Metadata, r.Metadata == nil)
	}
	var counts []predecessor.Count
	if err := s.Counts(context.Background(), func(c predecessor.Count) error { counts = append(counts, c); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(counts) != 2 || !strings.Contains(counts[0].Problem, `count "many" is not an integer`) ||
		!strings.Contains(counts[0].Problem, "created_at") || counts[1].Problem != "" || counts[1].Count != 3 {
		t.Errorf("counts = %+v, want the first refused (count and created_at) and the second read", counts)
	}
}

func TestMissingTables(t *testing.T) {
	emptySQLite := func(t *testing.T, ddl string) string {
		path := sqlitePath(t)
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`CREATE TABLE unrelated (x); ` + ddl); err != nil {
			t.Fatal(err)
		}
		return "sqlite:" + path
	}
	for _, tc := range []struct {
		name string
		kind predecessor.Kind
		url  func(t *testing.T) string
		want []string // every one in the error
	}{
		{"sqlite empty", predecessor.ActivityLogger, func(t *testing.T) string { return emptySQLite(t, "") },
			[]string{"not an activity-logger database", "table activitylog_useractivitylog", "table authtoken_token"}},
		{"sqlite columns", predecessor.ActivityLogger, func(t *testing.T) string {
			return emptySQLite(t, `CREATE TABLE activitylog_useractivitylog (id, user_id, action, timestamp);
				CREATE TABLE authtoken_token (key, created, user_id)`)
		}, []string{"column metadata, status of table activitylog_useractivitylog"}},
		{"sqlite wrong kind", predecessor.EventTracking, func(t *testing.T) string {
			path := sqlitePath(t)
			predecessors.ActivityLoggerSQLite(t, path, nil, nil)
			return "sqlite:" + path
		}, []string{"not an event-tracking database", "table events", "table user_event_counts"}},
		{"postgres empty", predecessor.EventTracking, func(t *testing.T) string {
			return predecessors.ActivityLoggerPostgres(t, nil, nil)
		}, []string{"not an event-tracking database", "table events", "table user_event_counts"}},
		{"postgres wrong kind", predecessor.ActivityLogger, func(t *testing.T) string {
			return predecessors.EventTrackingPostgres(t, nil, nil)
		}, []string{"table activitylog_useractivitylog", "table authtoken_token"}},
		{"unknown kind", predecessor.Kind("django"), func(t *testing.T) string { return emptySQLite(t, "") },
			[]string{`unknown kind "django"`}},
		{"no file", predecessor.ActivityLogger, func(t *testing.T) string { return "sqlite:" + sqlitePath(t) },
			[]string{"no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url(t)
			s, err := predecessor.Open(context.Background(), tc.kind, url)
			if err == nil {
				s.Close()
				t.Fatalf("Open succeeded, want an error saying %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// fn's error stops every walk at once and comes back as is.
func TestStopsOnError(t *testing.T) {
	path := sqlitePath(t)
	predecessors.ActivityLoggerSQLite(t, path, predecessors.ManyLogs(1500), predecessors.AwkwardTokens())
	s := open(t, predecessor.ActivityLogger, "sqlite:"+path)
	stop := errors.New("stop")
	for _, n := range []int{1, 3, 1000, 1001} {
		calls := 0
		err := s.Events(context.Background(), func(predecessor.Row) error {
			calls++
			if calls == n {
				return stop
			}
			return nil
		})
		if err != stop || calls != n {
			t.Errorf("stop at %d: Events = %v after %d calls, want the error itself after %d", n, err, calls, n)
		}
	}
	calls := 0
	if err := s.Tokens(context.Background(), func(predecessor.Token) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("Tokens = %v after %d calls, want the error itself after 1", err, calls)
	}
	// The source is still usable after a stopped walk.
	if n, err := s.CountEvents(context.Background()); err != nil || n != 1500 {
		t.Errorf("CountEvents after the stops = %d, %v; want 1500", n, err)
	}

	url := predecessors.EventTrackingPostgres(t, predecessors.ManyEvents(5), predecessors.AwkwardCounts())
	pg := open(t, predecessor.EventTracking, url)
	calls = 0
	if err := pg.Counts(context.Background(), func(predecessor.Count) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("Counts = %v after %d calls, want the error itself after 1", err, calls)
	}
	calls = 0
	if err := pg.Events(context.Background(), func(predecessor.Row) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("Events (postgres) = %v after %d calls, want the error itself after 1", err, calls)
	}
}

// A cancelled context ends a walk with its error, before the next row.
func TestCancel(t *testing.T) {
	path := sqlitePath(t)
	predecessors.ActivityLoggerSQLite(t, path, predecessors.ManyLogs(1200), nil)
	s := open(t, predecessor.ActivityLogger, "sqlite:"+path)
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := s.Events(ctx, func(predecessor.Row) error {
		calls++
		if calls == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 10 {
		t.Errorf("Events = %v after %d calls, want context.Canceled after 10", err, calls)
	}
}

// fn may keep every Row's Metadata: the reader never reuses the bytes.
func TestMetadataKept(t *testing.T) {
	path := sqlitePath(t)
	logs := predecessors.ManyLogs(1100)
	predecessors.ActivityLoggerSQLite(t, path, logs, nil)
	s := open(t, predecessor.ActivityLogger, "sqlite:"+path)
	var kept []json.RawMessage
	if err := s.Events(context.Background(), func(r predecessor.Row) error {
		kept = append(kept, r.Metadata)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, m := range kept {
		if want := fmt.Sprintf(`{"n": %d}`, i); string(m) != want {
			t.Fatalf("kept metadata %d = %s, want %s", i, m, want)
		}
	}
}

// A file whose path holds what a URI escapes still opens, and only it.
func TestOddPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a b#c%d?e&mode=rw")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "db.sqlite3")
	predecessors.ActivityLoggerSQLite(t, path, predecessors.AwkwardLogs()[:2], nil)
	s := open(t, predecessor.ActivityLogger, "sqlite:"+path)
	compare(t, events(t, s), logsWant(predecessors.AwkwardLogs()[:2]), true, "timestamp")
}
