package postgres

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/test/testenv"
)

// TestCreateManyOverlappingBatches: concurrent batches sharing ids, in
// different orders, plus single creates of the same ids, neither deadlock
// nor store an id twice, and exactly one call reports each id created.
func TestCreateManyOverlappingBatches(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	now := time.Now()
	const ids = 200
	base := make([]domain.Event, ids)
	for i := range base {
		base[i] = mkEvent(int64(1+i%5), "login", now.Add(time.Duration(i)*time.Millisecond))
		if i%2 == 1 { // half the ids chosen by a client: claimed in event_ids
			base[i].ID = clientID(byte(i))
		}
	}
	const workers = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created = map[domain.ID]int{}
		errs    []error
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w%4 == 3 { // single creates, newest first
				for i := ids - 1; i >= 0; i -= 3 {
					e, c, err := s.Create(ctx, base[i], "w")
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else if c {
						created[e.ID]++
					}
					mu.Unlock()
				}
				return
			}
			batch := make([]domain.Event, 0, ids+10)
			for k := range ids {
				batch = append(batch, base[(k*(w+1)*7+w)%ids])
			}
			batch = append(batch, base[:10]...) // duplicates within the batch
			res, err := s.CreateMany(ctx, batch, "w")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			for i, r := range res {
				if r.Event.ID != batch[i].ID {
					errs = append(errs, errors.New("results do not line up with the input"))
					return
				}
				if r.Created {
					created[r.Event.ID]++
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	// Every id stored once; only client ids are claimed in event_ids, and
	// no initial history row is stored (History derives it).
	var rows, distinct, idRows, hist int
	for q, dst := range map[string]*int{
		`SELECT count(*) FROM events`:               &rows,
		`SELECT count(DISTINCT id) FROM events`:     &distinct,
		`SELECT count(*) FROM event_ids`:            &idRows,
		`SELECT count(*) FROM event_status_history`: &hist,
	} {
		if err := s.db.GetContext(ctx, dst, q); err != nil {
			t.Fatal(err)
		}
	}
	if rows != ids || distinct != ids || idRows != ids/2 || hist != 0 {
		t.Errorf("events %d (%d distinct ids), event_ids %d, history %d; want %d, %d, %d, 0", rows, distinct, idRows, hist, ids, ids, ids/2)
	}
	for _, e := range base {
		if created[e.ID] != 1 {
			t.Errorf("%s reported created %d times, want 1", e.ID, created[e.ID])
		}
	}
}

// TestSetStatusRace: of many concurrent identical transitions exactly one
// wins, the others get ErrStatusConflict, and one history entry is added.
func TestSetStatusRace(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	e, _, err := s.Create(ctx, mkEvent(1, "login", time.Now()), "x")
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = s.SetStatus(ctx, e.ID, domain.StatusPending, domain.StatusInProgress, time.Now(), "racer")
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range results {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, domain.ErrStatusConflict):
			t.Errorf("loser: %v, want ErrStatusConflict", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d winners, want 1", wins)
	}
	h, err := s.History(ctx, e.ID)
	if err != nil || len(h) != 2 {
		t.Fatalf("History = %+v, %v; want 2 entries", h, err)
	}
	if _, err := s.SetStatus(ctx, domain.NewID(time.Now()), domain.StatusPending, domain.StatusInProgress, time.Now(), "x"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("SetStatus of an unknown id: %v, want ErrNotFound", err)
	}
}

// TestSessionSettings: every pooled session runs in UTC with the configured
// statement_timeout, and a statement running past it is "unavailable".
func TestSessionSettings(t *testing.T) {
	url, _ := testenv.PostgresSchema(t)
	s := openStore(t, url, storage.Options{StatementTimeout: 200 * time.Millisecond})
	ctx := t.Context()
	var tz, st, app string
	if err := s.db.QueryRowContext(ctx, `SELECT current_setting('TimeZone'), current_setting('statement_timeout'), current_setting('application_name')`).Scan(&tz, &st, &app); err != nil {
		t.Fatal(err)
	}
	if tz != "UTC" || st != "200ms" || app != "activityd" {
		t.Errorf("TimeZone %q, statement_timeout %q, application_name %q; want UTC, 200ms, activityd", tz, st, app)
	}
	_, err := s.db.ExecContext(ctx, `SELECT pg_sleep(2)`)
	if !errors.Is(wrap(err), domain.ErrUnavailable) {
		t.Errorf("a statement past statement_timeout: %v, want ErrUnavailable", err)
	}

	// The URL's own statement_timeout is kept when the options name none.
	s2 := openStore(t, testenv.WithParam(url, "statement_timeout", "1500"), storage.Options{})
	if err := s2.db.QueryRowContext(ctx, `SELECT current_setting('statement_timeout')`).Scan(&st); err != nil {
		t.Fatal(err)
	}
	if st != "1500ms" {
		t.Errorf("statement_timeout from the URL = %q, want 1500ms", st)
	}
}

// TestStatementCache: hot statements are prepared once; statement_cache=off
// in the URL sends everything unprepared, with the same results.
func TestStatementCache(t *testing.T) {
	url, _ := testenv.PostgresSchema(t)
	for _, off := range []bool{false, true} {
		u := url
		if off {
			u = testenv.WithParam(url, "statement_cache", "off")
		}
		s := openStore(t, u, storage.Options{})
		ctx := t.Context()
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		e, _, err := s.Create(ctx, mkEvent(1, "login", time.Now()), "x")
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			p, err := s.List(ctx, domain.Filter{UserID: 1, Order: domain.Desc, Limit: 10})
			if err != nil || len(p.Events) == 0 {
				t.Fatalf("List: %+v, %v", p, err)
			}
			if _, err := s.Get(ctx, e.ID); err != nil {
				t.Fatal(err)
			}
		}
		s.stmts.mu.RLock()
		n := len(s.stmts.stmts)
		s.stmts.mu.RUnlock()
		if off && n != 0 || !off && n != 3 {
			t.Errorf("statement_cache off=%v: %d statements prepared", off, n)
		}
	}
}

// TestMetadataRoundTrip: jsonb reorders and respaces; the store hands back
// the domain's canonical form.
func TestMetadataRoundTrip(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	e := mkEvent(1, "login", time.Now())
	canon, err := domain.CanonicalObject([]byte(`{"zeta": [1, 2.50, {"b": null, "a": "<&>"}], "a": "é\u0001", "long_key_name": true}`))
	if err != nil {
		t.Fatal(err)
	}
	e.Metadata = canon
	got, _, err := s.Create(ctx, e, "x")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Metadata) != string(canon) {
		t.Errorf("Create returned metadata %s, want %s", got.Metadata, canon)
	}
	read, err := s.Get(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(read.Metadata) != string(canon) {
		t.Errorf("Get returned metadata %s, want %s", read.Metadata, canon)
	}
	if read.RecordedAt.Location() != time.UTC || !read.RecordedAt.Equal(e.RecordedAt) {
		t.Errorf("recorded_at %v, want %v in UTC", read.RecordedAt, e.RecordedAt)
	}
}
