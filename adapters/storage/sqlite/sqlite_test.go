package sqlite

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/storagetest"
	"github.com/activityd/activityd/test/testenv"
)

// openTemp opens and migrates a store on a new file in t's temp dir.
func openTemp(t testing.TB, opts storage.Options) *Store {
	t.Helper()
	return openURL(t, testenv.SQLiteURL(t), opts)
}

// openURL opens and migrates a store on url, closed when the test ends.
func openURL(t testing.TB, url string, opts storage.Options) *Store {
	t.Helper()
	return testenv.OpenStore(t, func(ctx context.Context) (*Store, error) { return Open(ctx, url, opts) })
}

func TestContract(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) ports.Store { return openTemp(t, storage.Options{}) })
}

func TestWebhooksContract(t *testing.T) {
	storagetest.RunWebhooks(t, func(t *testing.T) ports.Webhooks { return openTemp(t, storage.Options{}) })
}

// The in-memory database, opened through the registry.
func TestContractInMemory(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) ports.Store {
		return testenv.OpenStore(t, func(ctx context.Context) (ports.Store, error) {
			return storage.Open(ctx, "sqlite::memory:", storage.Options{})
		})
	})
}

// The in-memory database: one connection serves reads and writes alike.
func TestWebhooksContractInMemory(t *testing.T) {
	storagetest.RunWebhooks(t, func(t *testing.T) ports.Webhooks {
		return openURL(t, "sqlite::memory:", storage.Options{})
	})
}

func TestParseURL(t *testing.T) {
	cases := []struct {
		url    string
		path   string
		memory bool
		params string
		bad    bool
	}{
		{url: "sqlite:./data/activity.db", path: "./data/activity.db"},
		{url: "sqlite:data.db", path: "data.db"},
		{url: "sqlite:///abs/path.db", path: "/abs/path.db"},
		{url: "SQLite:///abs/path.db", path: "/abs/path.db"},
		{url: "sqlite://rel/path.db", path: "rel/path.db"},
		{url: "sqlite:/abs/x.db?_pragma=cache_size(-2000)", path: "/abs/x.db", params: "_pragma=cache_size%28-2000%29"},
		{url: "sqlite::memory:", memory: true},
		{url: "sqlite://:memory:", memory: true},
		{url: "sqlite:", bad: true},
		{url: "sqlite://", bad: true},
		{url: "sqlite:?x=1", bad: true},
		{url: "postgres://x", bad: true},
		{url: "sqlite:x.db?%zz", bad: true},
	}
	for _, tc := range cases {
		cfg, err := ParseURL(tc.url)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseURL(%q) = %+v, want an error", tc.url, cfg)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.url, err)
			continue
		}
		if cfg.Path != tc.path || cfg.Memory != tc.memory || cfg.Params.Encode() != tc.params {
			t.Errorf("ParseURL(%q) = {%q %v %q}, want {%q %v %q}", tc.url, cfg.Path, cfg.Memory, cfg.Params.Encode(), tc.path, tc.memory, tc.params)
		}
	}
}

func TestRegisteredAndCreatesDirectories(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := storage.Open(t.Context(), "sqlite:"+filepath.Join(dir, "activity.db"), storage.Options{})
	if err != nil {
		t.Fatalf("storage.Open: %v", err)
	}
	defer s.Close()
	if _, ok := s.(*Store); !ok {
		t.Fatalf("storage.Open returned %T, want *sqlite.Store", s)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "activity.db")); err != nil {
		t.Fatalf("database file: %v", err)
	}
	var mode string
	if err := s.(*Store).w.GetContext(t.Context(), &mode, "PRAGMA journal_mode"); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var fk, sync int
	if err := s.(*Store).r.GetContext(t.Context(), &fk, "PRAGMA foreign_keys"); err != nil || fk != 1 {
		t.Errorf("foreign_keys on a read connection = %d, %v; want 1", fk, err)
	}
	if err := s.(*Store).w.GetContext(t.Context(), &sync, "PRAGMA synchronous"); err != nil || sync != 1 {
		t.Errorf("synchronous = %d, %v; want 1 (NORMAL)", sync, err)
	}
	// Read connections cannot write.
	if _, err := s.(*Store).r.ExecContext(t.Context(), "DELETE FROM events"); err == nil {
		t.Error("a read connection could write")
	}
}

func newEvent(user int64, action string, at time.Time) domain.Event {
	at = domain.Normalize(at)
	return domain.Event{
		ID: domain.NewID(at), UserID: user, Action: domain.Action(action), Status: domain.StatusPending,
		OccurredAt: at, RecordedAt: at, UpdatedAt: at, Metadata: []byte(`{"k":"v"}`),
	}
}

func TestMigrateIdempotentAndReopen(t *testing.T) {
	ctx := t.Context()
	url := "sqlite:" + filepath.Join(t.TempDir(), "data", "activity.db")
	s, err := Open(ctx, url, storage.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	for i := range 3 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	e := newEvent(9, "login", time.Now())
	if _, _, err := s.Create(ctx, e, "me"); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := s.SetStatus(ctx, e.ID, domain.StatusPending, domain.StatusInProgress, domain.Normalize(time.Now()), "me"); err != nil {
		t.Fatalf("SetStatus: %v", err)
	}
	tok := domain.Token{ID: "t", UserID: 9, Scopes: []domain.Scope{domain.ScopeRead}, Hash: []byte("hash"), CreatedAt: domain.Normalize(time.Now())}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	var versions int
	if err := s.r.GetContext(ctx, &versions, "SELECT COUNT(*) FROM goose_db_version WHERE version_id > 0"); err != nil {
		t.Fatalf("count versions: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("Ping after Close: %v, want ErrUnavailable", err)
	}
	if _, err := s.Get(ctx, e.ID); !errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("Get after Close: %v, want ErrUnavailable", err)
	}
	if _, _, err := s.Create(ctx, newEvent(9, "login", time.Now()), "me"); !errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("Create after Close: %v, want ErrUnavailable", err)
	}

	s2, err := Open(ctx, url, storage.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	if err := s2.Migrate(ctx); err != nil {
		t.Fatalf("Migrate after reopen: %v", err)
	}
	var versions2 int
	if err := s2.r.GetContext(ctx, &versions2, "SELECT COUNT(*) FROM goose_db_version WHERE version_id > 0"); err != nil {
		t.Fatalf("count versions: %v", err)
	}
	if versions2 != versions || versions == 0 {
		t.Errorf("applied migrations: %d before reopening, %d after; want the same, > 0", versions, versions2)
	}
	got, err := s2.Get(ctx, e.ID)
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if got.Status != domain.StatusInProgress || got.UserID != 9 || string(got.Metadata) != `{"k":"v"}` {
		t.Errorf("Get after reopen = %+v", got)
	}
	h, err := s2.History(ctx, e.ID)
	if err != nil || len(h) != 2 {
		t.Errorf("History after reopen = %+v, %v; want 2 entries", h, err)
	}
	if _, err := s2.TokenByHash(ctx, []byte("hash")); err != nil {
		t.Errorf("TokenByHash after reopen: %v", err)
	}
}

// Several processes (here: stores with pools of their own) migrating one
// new file at once all succeed, and each migration is applied once.
func TestMigrateConcurrently(t *testing.T) {
	url := "sqlite:" + filepath.Join(t.TempDir(), "activity.db")
	const n = 6
	stores := make([]*Store, n)
	for i := range stores {
		s, err := Open(t.Context(), url, storage.Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		stores[i] = s
	}
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			if err := s.Migrate(t.Context()); err != nil {
				t.Errorf("Migrate #%d: %v", i, err)
			}
		})
	}
	wg.Wait()
	var dup int
	if err := stores[0].r.GetContext(t.Context(), &dup,
		"SELECT COUNT(*) FROM (SELECT version_id FROM goose_db_version GROUP BY version_id HAVING COUNT(*) > 1)"); err != nil {
		t.Fatalf("query versions: %v", err)
	}
	if dup != 0 {
		t.Errorf("%d migrations recorded more than once", dup)
	}
	var held int
	if err := stores[0].r.GetContext(t.Context(), &held, "SELECT COUNT(*) FROM activityd_migration_lock"); err != nil || held != 0 {
		t.Errorf("migration lock rows left = %d, %v; want 0", held, err)
	}
}

// A writer that holds the database longer than the statement timeout makes
// writes fail fast with ErrUnavailable, and reads go on meanwhile.
func TestLockedIsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "activity.db")
	s, err := Open(t.Context(), "sqlite:"+path, storage.Options{StatementTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	e := newEvent(1, "login", time.Now())
	if _, _, err := s.Create(t.Context(), e, "x"); err != nil {
		t.Fatalf("Create: %v", err)
	}

	other, err := Open(t.Context(), "sqlite:"+path, storage.Options{})
	if err != nil {
		t.Fatalf("Open other: %v", err)
	}
	defer other.Close()
	tx, err := other.w.BeginTx(t.Context(), nil) // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer tx.Rollback()

	start := time.Now()
	_, _, err = s.Create(t.Context(), newEvent(1, "login", time.Now()), "x")
	if !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("Create while another process writes: err = %v, want ErrUnavailable", err)
	}
	t.Logf("gave up after %v: %v", time.Since(start).Round(time.Millisecond), err)
	_, err = s.SetStatus(t.Context(), e.ID, domain.StatusPending, domain.StatusInProgress, domain.Normalize(time.Now()), "x")
	if !errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("SetStatus while another process writes: err = %v, want ErrUnavailable", err)
	}
	// Readers are not blocked by the writer (WAL).
	if _, err := s.Get(t.Context(), e.ID); err != nil {
		t.Errorf("Get while another process writes: %v", err)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping while another process writes: %v", err)
	}
	_ = tx.Rollback()
	if _, _, err := s.Create(t.Context(), newEvent(1, "login", time.Now()), "x"); err != nil {
		t.Errorf("Create after the other writer finished: %v", err)
	}
}

// TestListUsesIndexes checks with EXPLAIN QUERY PLAN that every filter shape
// List builds is served by the intended index, in order (no temp b-tree
// sort), and that a keyset page is an index range, not a scan from the top.
func TestListUsesIndexes(t *testing.T) {
	s := openTemp(t, storage.Options{})
	now := domain.Normalize(time.Now())
	cur := &domain.Cursor{Time: now, ID: domain.NewID(now)}
	one := []domain.Action{"login"}
	two := []domain.Action{"login", "viewed"}
	type shape struct {
		name   string
		f      domain.Filter
		index  string // without the _recorded/_occurred suffix
		range_ bool   // a SEARCH bounded on the time column
	}
	shapes := []shape{
		{"none", domain.Filter{}, "events", false},
		{"status", domain.Filter{Status: domain.StatusDone}, "events", false},
		{"action", domain.Filter{Actions: one}, "events", false},
		{"actions", domain.Filter{Actions: two}, "events", false},
		{"range", domain.Filter{From: now.Add(-time.Hour), To: now}, "events", true},
		{"after", domain.Filter{After: cur}, "events", true},
		{"user", domain.Filter{UserID: 1}, "events_user", false},
		{"user status", domain.Filter{UserID: 1, Status: domain.StatusPending}, "events_user", false},
		{"user actions", domain.Filter{UserID: 1, Actions: two}, "events_user", false},
		{"user range", domain.Filter{UserID: 1, From: now.Add(-time.Hour), To: now.Add(time.Hour)}, "events_user", true},
		{"user after", domain.Filter{UserID: 1, After: cur}, "events_user", true},
		{"user range after", domain.Filter{UserID: 1, From: now.Add(-time.Hour), To: now.Add(time.Hour), After: cur}, "events_user", true},
		{"user actions range after", domain.Filter{UserID: 1, Actions: two, From: now.Add(-time.Hour), After: cur}, "events_user", true},
		{"user action", domain.Filter{UserID: 1, Actions: one}, "events_user_action", false},
		{"user action status", domain.Filter{UserID: 1, Actions: one, Status: domain.StatusPending}, "events_user_action", false},
		{"user action range", domain.Filter{UserID: 1, Actions: one, From: now.Add(-time.Hour), To: now}, "events_user_action", true},
		{"user action after", domain.Filter{UserID: 1, Actions: one, After: cur}, "events_user_action", true},
		{"user action range after", domain.Filter{UserID: 1, Actions: one, From: now.Add(-time.Hour), To: now.Add(time.Hour), After: cur}, "events_user_action", true},
		{"user action offset", domain.Filter{UserID: 1, Actions: one, Offset: 10}, "events_user_action", false},
	}
	for _, sh := range shapes {
		for _, tf := range []domain.TimeField{domain.ByRecordedAt, domain.ByOccurredAt} {
			for _, order := range []domain.Order{domain.Desc, domain.Asc} {
				f := sh.f
				f.TimeField, f.Order = tf, order
				q, args := listSQL(f)
				var plan []string
				rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
				if err != nil {
					t.Fatalf("%s: EXPLAIN: %v", sh.name, err)
				}
				for rows.Next() {
					var id, parent, unused int
					var detail string
					if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
						t.Fatal(err)
					}
					plan = append(plan, detail)
				}
				rows.Close()
				text := strings.Join(plan, " | ")
				name := fmt.Sprintf("%s/%s/%s", sh.name, tf, order)
				suffix := strings.TrimSuffix(string(tf), "_at")
				wantIndex := "USING INDEX " + sh.index + "_" + suffix
				switch {
				case len(plan) != 1:
					t.Errorf("%s: plan %q, want one step", name, text)
				case !strings.Contains(text, wantIndex+" ") && !strings.HasSuffix(text, wantIndex):
					t.Errorf("%s: plan %q, want %s", name, text, wantIndex)
				case strings.Contains(text, "TEMP B-TREE"):
					t.Errorf("%s: plan %q sorts", name, text)
				case sh.range_ && !strings.Contains(text, string(tf)+">") && !strings.Contains(text, string(tf)+"<"):
					t.Errorf("%s: plan %q, want a range on %s", name, text, tf)
				case f.UserID != 0 && !strings.HasPrefix(text, "SEARCH"):
					t.Errorf("%s: plan %q, want a SEARCH", name, text)
				}
				if strings.TrimSpace(text) == "SCAN events" {
					t.Errorf("%s: plan %q scans the table", name, text)
				}
			}
		}
	}
	// The other queries.
	for _, q := range []struct{ sql, want string }{
		{selectEvent, "USING INDEX sqlite_autoindex_events_1"},
		{`SELECT from_status, to_status, at, "by" FROM status_history WHERE event_id = ? ORDER BY seq`, "USING PRIMARY KEY"},
		{`SELECT user_id, action, COUNT(*) FROM events WHERE recorded_at >= ? AND recorded_at < ? GROUP BY user_id, action`, "USING INDEX events_recorded"},
		{`SELECT ` + tokenColumns + ` FROM tokens WHERE hash = ?`, "USING INDEX sqlite_autoindex_tokens_2"},
	} {
		var n int
		args := make([]any, strings.Count(q.sql, "?"))
		for i := range args {
			args[i] = 1
		}
		rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q.sql, args...)
		if err != nil {
			t.Fatalf("EXPLAIN %s: %v", q.sql, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			_ = rows.Scan(&id, &parent, &unused, &detail)
			plan = append(plan, detail)
			n++
		}
		rows.Close()
		if text := strings.Join(plan, " | "); !strings.Contains(text, q.want) {
			t.Errorf("%s: plan %q, want %s", q.sql, text, q.want)
		}
	}
}

func TestMapErr(t *testing.T) {
	if err := mapErr("x", nil); err != nil {
		t.Errorf("mapErr(nil) = %v", err)
	}
	nf := fmt.Errorf("%w: event", domain.ErrNotFound)
	if err := mapErr("x", nf); err != nf {
		t.Errorf("mapErr(ErrNotFound) = %v, want it unchanged", err)
	}
	if err := mapErr("x", context.DeadlineExceeded); !errors.Is(err, domain.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("mapErr(DeadlineExceeded) = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if err := mapErr("x", context.Canceled); errors.Is(err, domain.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("mapErr(Canceled) = %v, want Canceled only", err)
	}
	if err := mapErr("x", errors.New("syntax error")); errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("mapErr(syntax error) = %v, must not be ErrUnavailable", err)
	}
}

func BenchmarkCreate(b *testing.B) {
	base := time.Now()
	b.Run("serial", func(b *testing.B) {
		s := openTemp(b, storage.Options{})
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			e := newEvent(int64(i%1000+1), "login", base.Add(time.Duration(i)*time.Microsecond))
			if _, _, err := s.Create(ctx, e, "bench"); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	// 64 concurrent clients on 2 cores, as in docs/performance.md's targets.
	b.Run("parallel", func(b *testing.B) {
		s := openTemp(b, storage.Options{})
		ctx := context.Background()
		b.ReportAllocs()
		b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				e := newEvent(i%1000+1, "login", base.Add(time.Duration(i)*time.Microsecond))
				if _, _, err := s.Create(ctx, e, "bench"); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

func BenchmarkCreateMany(b *testing.B) {
	s := openTemp(b, storage.Options{})
	ctx := context.Background()
	base := time.Now()
	const batch = 1000
	es := make([]domain.Event, batch)
	b.ReportAllocs()
	k := 0
	for b.Loop() {
		for j := range es {
			es[j] = newEvent(int64(k%1000+1), "upload_file", base.Add(time.Duration(k)*time.Microsecond))
			k++
		}
		if _, err := s.CreateMany(ctx, es, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkList reads the newest 50 events of one user from a table of
// 100k events of 100 users.
func BenchmarkList(b *testing.B) {
	s := openTemp(b, storage.Options{})
	ctx := context.Background()
	const total, users = 100_000, 100
	base := time.Now().Add(-time.Hour)
	actions := []string{"login", "logout", "upload_file", "viewed"}
	es := make([]domain.Event, 0, 1000)
	for i := range total {
		es = append(es, newEvent(int64(i%users+1), actions[i/users%len(actions)], base.Add(time.Duration(i)*time.Millisecond)))
		if len(es) == cap(es) {
			if _, err := s.CreateMany(ctx, es, "seed"); err != nil {
				b.Fatal(err)
			}
			es = es[:0]
		}
	}
	list := func(b *testing.B, f func(i int) domain.Filter) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			page, err := s.List(ctx, f(i))
			if err != nil {
				b.Fatal(err)
			}
			if len(page.Events) != 50 {
				b.Fatalf("%d events, want 50", len(page.Events))
			}
			i++
		}
	}
	b.Run("newest50_user", func(b *testing.B) {
		list(b, func(i int) domain.Filter {
			return domain.Filter{UserID: int64(i%users + 1), Order: domain.Desc, Limit: 50}
		})
	})
	b.Run("newest50_user_action", func(b *testing.B) {
		list(b, func(i int) domain.Filter {
			return domain.Filter{UserID: int64(i%users + 1), Actions: []domain.Action{"viewed"}, Order: domain.Desc, Limit: 50}
		})
	})
	b.Run("newest50_user_parallel", func(b *testing.B) {
		b.ReportAllocs()
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				if _, err := s.List(ctx, domain.Filter{UserID: i%users + 1, Order: domain.Desc, Limit: 50}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// Concurrent Creates share transactions (group commit); each still gets
// its own outcome and its own history entry.
func TestGroupCommit(t *testing.T) {
	s := openTemp(t, storage.Options{})
	ctx := t.Context()
	const workers, per = 32, 20
	base := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				e := newEvent(int64(w+1), "login", base.Add(time.Duration(w*per+i)*time.Microsecond))
				got, created, err := s.Create(ctx, e, fmt.Sprintf("w%d", w))
				if err != nil || !created || got.ID != e.ID {
					t.Errorf("Create: %v created=%v", err, created)
					return
				}
				// Every other event is created again at once: found, not created.
				if i%2 == 0 {
					again, created, err := s.Create(ctx, e, "again")
					if err != nil || created || again.ID != e.ID {
						t.Errorf("Create again: %v created=%v", err, created)
					}
				}
			}
		})
	}
	wg.Wait()
	var n int
	if err := s.r.GetContext(ctx, &n, "SELECT COUNT(*) FROM events"); err != nil || n != workers*per {
		t.Fatalf("events stored = %d, %v; want %d", n, err, workers*per)
	}
	var wrong int
	if err := s.r.GetContext(ctx, &wrong, `SELECT COUNT(*) FROM events e JOIN status_history h ON h.event_id = e.id
		WHERE h.seq != 1 OR h."by" != 'w' || (e.user_id - 1)`); err != nil || wrong != 0 {
		t.Errorf("history entries with the wrong seq or by = %d, %v", wrong, err)
	}
}

// One event the database refuses does not fail the others of its group.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	s := openTemp(t, storage.Options{})
	now := time.Now()
	good1, good2 := newEvent(1, "login", now), newEvent(2, "login", now)
	bad := newEvent(3, "login", now)
	bad.Status = "BOGUS" // breaks the CHECK constraint
	calls := make([]storage.Call[storage.CreateReq], 3)
	for i, e := range []domain.Event{good1, bad, good2} {
		calls[i] = storage.Call[storage.CreateReq]{Ctx: t.Context(), Req: storage.CreateReq{Event: e, By: "x"}}
	}
	results := s.flushGroup(calls)
	if len(results) != len(calls) {
		t.Fatalf("%d answers for %d requests", len(results), len(calls))
	}
	for i, res := range results {
		if (res.Err != nil) != (i == 1) {
			t.Errorf("request %d: err = %v", i, res.Err)
		}
		if i != 1 && (!res.Created || res.Event.ID != calls[i].Req.Event.ID) {
			t.Errorf("request %d: %+v", i, res)
		}
	}
	for _, e := range []domain.Event{good1, good2} {
		if _, err := s.Get(t.Context(), e.ID); err != nil {
			t.Errorf("Get: %v", err)
		}
	}
	if _, err := s.Get(t.Context(), bad.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Get(bad): %v, want ErrNotFound", err)
	}
}

// Close while Creates are in flight: each either succeeds or reports
// ErrUnavailable; nothing panics or hangs.
func TestCloseDuringCreates(t *testing.T) {
	s, err := Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "a.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ok, unavailable atomic.Int64
	for w := range 16 {
		wg.Go(func() {
			for i := range 50 {
				_, _, err := s.Create(t.Context(), newEvent(int64(w+1), "login", time.Now().Add(time.Duration(i)*time.Microsecond)), "x")
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, domain.ErrUnavailable):
					unavailable.Add(1)
				default:
					t.Errorf("Create during Close: %v", err)
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
	t.Logf("%d created, %d unavailable", ok.Load(), unavailable.Load())
	if unavailable.Load() == 0 {
		t.Log("Close came after every create")
	}
}

// TestMaintainRetention: events recorded before now - retention go, with
// their history. A chained store keeps their changes as pruned tombstones
// (later links follow theirs), so the chains still verify; an unchained
// one deletes the changes made before the cutoff.
func TestMaintainRetention(t *testing.T) {
	for _, opts := range []storage.Options{{}, {Unchained: true}} {
		t.Run(fmt.Sprintf("unchained=%v", opts.Unchained), func(t *testing.T) { testMaintainRetention(t, opts) })
	}
}

func testMaintainRetention(t *testing.T, opts storage.Options) {
	s := openTemp(t, opts)
	ctx := t.Context()
	defer func(n int) { retentionChunk = n }(retentionChunk)
	retentionChunk = 1000
	now := domain.Normalize(time.Now())
	var es []domain.Event
	for i := range 2_500 {
		// 2200 events older than 30 days (more than two chunks), 300 newer.
		age := 31*24*time.Hour + time.Duration(i)*time.Second
		if i >= 2_200 {
			age = time.Duration(i) * time.Second
		}
		es = append(es, newEvent(int64(i%7+1), "login", now.Add(-age)))
	}
	for i := 0; i < len(es); i += 500 {
		if _, err := s.CreateMany(ctx, es[i:i+500], "x"); err != nil {
			t.Fatal(err)
		}
	}
	// The boundary: an event exactly at now - retention is kept.
	edge := newEvent(1, "login", now.Add(-30*24*time.Hour))
	if _, _, err := s.Create(ctx, edge, "x"); err != nil {
		t.Fatal(err)
	}
	// A recent status change of an old event: retention removes it too.
	if _, err := s.SetStatus(ctx, es[0].ID, domain.StatusPending, domain.StatusInProgress, now, "x"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Maintain(ctx, now, 0); err != nil || n != 0 {
		t.Fatalf("Maintain without retention = %d, %v; want 0, nil", n, err)
	}
	n, err := s.Maintain(ctx, now, 30*24*time.Hour)
	if err != nil || n != 2_200 {
		t.Fatalf("Maintain = %d, %v; want 2200 events deleted", n, err)
	}
	var events, history int
	if err := s.r.GetContext(ctx, &events, "SELECT COUNT(*) FROM events"); err != nil || events != 301 {
		t.Errorf("events left = %d, %v; want 301", events, err)
	}
	if err := s.r.GetContext(ctx, &history, "SELECT COUNT(*) FROM status_history"); err != nil || history != 301 {
		t.Errorf("history rows left = %d, %v; want 301", history, err)
	}
	var changes, pruned int
	if err := s.r.GetContext(ctx, &changes, "SELECT COUNT(*) FROM changes"); err != nil {
		t.Fatal(err)
	}
	if err := s.r.GetContext(ctx, &pruned, "SELECT COUNT(*) FROM changes WHERE pruned = 1"); err != nil {
		t.Fatal(err)
	}
	if opts.Unchained {
		if changes != 302 || pruned != 0 { // the old event's recent status change stays (left out of reads)
			t.Errorf("changes left = %d (%d pruned); want 302 (those of the events kept, and one recent status change)", changes, pruned)
		}
	} else {
		if changes != 2_502 || pruned != 2_201 {
			t.Errorf("changes left = %d (%d pruned); want all 2502, the 2201 of the deleted events pruned", changes, pruned)
		}
		if res := verifyAll(t, s); !res.OK || res.Checked != 2_502 || res.Pruned != 2_201 {
			t.Errorf("verification after retention: %+v, first broken %+v; want ok, 2201 pruned", res, res.FirstBroken)
		}
	}
	if feed, err := s.Changes(ctx, domain.ChangeFilter{Limit: 5000}); err != nil || len(feed) != 301 {
		t.Errorf("the feed after retention: %d changes, %v; want the 301 of the events kept", len(feed), err)
	}
	if !opts.Unchained {
		// The id of a removed event given again (a re-run import, a
		// client id): the new event is the feed's and its chain's, the
		// tombstone stays the old one's.
		again := es[1]
		again.RecordedAt, again.OccurredAt, again.UpdatedAt = now, now, now
		if _, created, err := s.Create(ctx, again, "x"); err != nil || !created {
			t.Fatalf("re-create a removed id: %v, %v", created, err)
		}
		feed, err := s.Changes(ctx, domain.ChangeFilter{After: 2_502, Limit: 10})
		if err != nil || len(feed) != 1 || feed[0].Event.ID != again.ID {
			t.Errorf("the feed after re-creating a removed id: %+v, %v; want the one new change", feed, err)
		}
		if res := verifyAll(t, s); !res.OK || res.Pruned != 2_201 {
			t.Errorf("verification after re-creating a removed id: %+v, first broken %+v", res, res.FirstBroken)
		}
	}
	if head, err := s.FeedHead(ctx); err != nil || head < 2_502 {
		t.Errorf("FeedHead after retention = %d, %v; want at least 2502 (positions are never handed out again)", head, err)
	}
	if _, err := s.Get(ctx, es[0].ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Get(old event): %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, edge.ID); err != nil {
		t.Errorf("Get(event at the cutoff): %v", err)
	}
	if n, err := s.Maintain(ctx, now, 30*24*time.Hour); err != nil || n != 0 {
		t.Errorf("Maintain again = %d, %v; want 0, nil", n, err)
	}
}

// verifyAll walks every chain record of s through domain.Verifier.
func verifyAll(t *testing.T, s *Store) domain.Result {
	t.Helper()
	v := domain.NewVerifier(nil, nil, true)
	for after := int64(0); ; {
		rs, err := s.ChainRecords(t.Context(), domain.ChangeFilter{After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			v.Add(r)
			after = r.Entry.Position
		}
		if len(rs) < 1000 {
			return v.Finish(0)
		}
	}
}

func TestMergeValues(t *testing.T) {
	dst := url.Values{"_pragma": {"busy_timeout(5000)", "cache_size(-32768)", "foreign_keys(1)"}, "_txlock": {"immediate"}}
	mergeValues(dst, url.Values{"_pragma": {"CACHE_SIZE = -1000", "mmap_size(1024)"}, "_txlock": {"deferred"}})
	want := url.Values{"_pragma": {"busy_timeout(5000)", "foreign_keys(1)", "CACHE_SIZE = -1000", "mmap_size(1024)"}, "_txlock": {"deferred"}}
	if dst.Encode() != want.Encode() {
		t.Errorf("mergeValues = %v, want %v", dst, want)
	}
}
