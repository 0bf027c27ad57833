package postgres

import (
	"bytes"
	"cmp"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
)

func mkEvent(user int64, action string, recorded time.Time) domain.Event {
	recorded = domain.Normalize(recorded)
	return domain.Event{
		ID: domain.NewID(recorded), UserID: user, Action: domain.Action(action), Status: domain.StatusPending,
		OccurredAt: recorded.Add(-time.Minute), RecordedAt: recorded, UpdatedAt: recorded, Metadata: []byte(`{"k":"v"}`),
	}
}

// partitionOf names the partition of events holding id.
func partitionOf(t *testing.T, s *Store, id domain.ID) string {
	t.Helper()
	var name string
	if err := s.db.GetContext(t.Context(), &name, `SELECT tableoid::regclass::text FROM events WHERE id = $1::uuid`, id.String()); err != nil {
		t.Fatalf("partition of %s: %v", id, err)
	}
	return name
}

// TestPagingAcrossPartitions pages through events of two months, on both
// time fields and in both orders, and checks every page against the
// expected order: the Merge Append over partitions keeps keyset paging
// exact across the boundary.
func TestPagingAcrossPartitions(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	jan := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	feb := jan.AddDate(0, 1, 0)
	if err := s.EnsurePartitions(ctx, jan); err != nil {
		t.Fatal(err)
	}
	var es []domain.Event
	// Seven events on each side of the boundary, some on the same instant
	// (ties broken by id), and one exactly on it.
	for i := range 7 {
		es = append(es, mkEvent(1, "login", feb.Add(-time.Duration(i/2+1)*time.Second)))
		es = append(es, mkEvent(1, "logout", feb.Add(time.Duration(i/2)*time.Second)))
	}
	es = append(es, mkEvent(2, "login", feb)) // another user
	res, err := s.CreateMany(ctx, es, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.Created {
			t.Fatalf("CreateMany: %s not created", r.Event.ID)
		}
	}
	if p := partitionOf(t, s, es[0].ID); p != "events_p202501" {
		t.Errorf("a January event is in %s", p)
	}
	if p := partitionOf(t, s, es[1].ID); p != "events_p202502" {
		t.Errorf("a February event is in %s", p)
	}

	for _, field := range []domain.TimeField{domain.ByRecordedAt, domain.ByOccurredAt} {
		for _, order := range []domain.Order{domain.Desc, domain.Asc} {
			for _, user := range []int64{1, 0} {
				f := domain.Filter{UserID: user, TimeField: field, Order: order, Limit: 3}
				var want []domain.Event
				for _, e := range es {
					if user == 0 || e.UserID == user {
						want = append(want, e)
					}
				}
				slices.SortFunc(want, func(a, b domain.Event) int {
					c := cmp.Or(f.TimeOf(a).Compare(f.TimeOf(b)), bytes.Compare(a.ID[:], b.ID[:]))
					if order == domain.Desc {
						return -c
					}
					return c
				})
				var got []domain.Event
				for pages := 0; ; pages++ {
					if pages > len(want) {
						t.Fatalf("%s %s user %d: paging does not end", field, order, user)
					}
					p, err := s.List(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, p.Events...)
					if p.Next == nil {
						break
					}
					f.After = p.Next
				}
				if len(got) != len(want) {
					t.Fatalf("%s %s user %d: %d events, want %d", field, order, user, len(got), len(want))
				}
				for i := range want {
					if got[i].ID != want[i].ID {
						t.Fatalf("%s %s user %d: event %d is %s, want %s", field, order, user, i, got[i].ID, want[i].ID)
					}
				}
			}
		}
	}

	// A half-open range across the boundary.
	p, err := s.List(ctx, domain.Filter{UserID: 1, From: feb.Add(-2 * time.Second), To: feb.Add(2 * time.Second), TimeField: domain.ByRecordedAt, Order: domain.Asc, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range p.Events {
		if e.RecordedAt.Before(feb.Add(-2*time.Second)) || !e.RecordedAt.Before(feb.Add(2*time.Second)) {
			t.Errorf("range [feb-2s, feb+2s) returned an event at %s", e.RecordedAt)
		}
	}
	if len(p.Events) != 8 { // 2 at -2s, 2 at -1s, 2 at 0, 2 at +1s
		t.Errorf("range [feb-2s, feb+2s): %d events, want 8", len(p.Events))
	}

	// Counting a window that straddles the boundary.
	counts, err := s.CountWindow(ctx, feb.Add(-time.Hour), feb.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 2 || counts[0].UserID != 1 || counts[0].Total != 14 || counts[0].ByAction["login"] != 7 || counts[1].Total != 1 {
		t.Errorf("CountWindow across the boundary = %+v", counts)
	}
}

// TestEnsurePartitionsMovesDefaultRows: events recorded while their month
// had no partition sit in DEFAULT; creating the month's partition later
// moves them there, history included, and they stay readable.
func TestEnsurePartitionsMovesDefaultRows(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	mar := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	e := mkEvent(5, "login", mar)
	if _, _, err := s.Create(ctx, e, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, e.ID, domain.StatusPending, domain.StatusInProgress, mar.Add(time.Hour), "test"); err != nil {
		t.Fatal(err)
	}
	if p := partitionOf(t, s, e.ID); p != "events_default" {
		t.Fatalf("event of a month without partition is in %s, want events_default", p)
	}
	for range 2 { // idempotent
		if err := s.EnsurePartitions(ctx, mar); err != nil {
			t.Fatal(err)
		}
	}
	if p := partitionOf(t, s, e.ID); p != "events_p202403" {
		t.Errorf("after EnsurePartitions the event is in %s, want events_p202403", p)
	}
	var hist string
	if err := s.db.GetContext(ctx, &hist, `SELECT DISTINCT tableoid::regclass::text FROM event_status_history WHERE event_id = $1::uuid`, e.ID.String()); err != nil {
		t.Fatal(err)
	}
	if hist != "event_status_history_p202403" {
		t.Errorf("its history is in %s", hist)
	}
	got, err := s.Get(ctx, e.ID)
	if err != nil || got.Status != domain.StatusInProgress {
		t.Fatalf("Get after the move = %+v, %v", got, err)
	}
	h, err := s.History(ctx, e.ID)
	if err != nil || len(h) != 2 {
		t.Fatalf("History after the move = %+v, %v", h, err)
	}
	if _, err := s.SetStatus(ctx, e.ID, domain.StatusInProgress, domain.StatusDone, mar.Add(2*time.Hour), "test"); err != nil {
		t.Fatalf("SetStatus after the move: %v", err)
	}
}

// TestDropPartitionsBefore is retention: whole months entirely before the
// cutoff go, with their history and their ids; the rest stays.
func TestDropPartitionsBefore(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	jan := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.EnsurePartitions(ctx, jan); err != nil { // 2020-01 .. 2020-04
		t.Fatal(err)
	}
	e1 := mkEvent(1, "login", jan.Add(24*time.Hour))                  // January
	e2 := mkEvent(1, "login", jan.AddDate(0, 1, 0).Add(-time.Second)) // last second of January
	e3 := mkEvent(1, "login", jan.AddDate(0, 1, 0))                   // February
	e4 := mkEvent(1, "login", jan.AddDate(0, 2, 14))                  // March
	old := mkEvent(1, "login", jan.AddDate(-1, 0, 0))                 // 2019: DEFAULT
	// Ids a client chose are claimed in event_ids, and retention must drop
	// their rows too: e2's and old's (server-made ids are not claimed).
	e2.ID, old.ID = clientID(2), clientID(3)
	if _, err := s.CreateMany(ctx, []domain.Event{e1, e2, e3, e4, old}, "test"); err != nil {
		t.Fatal(err)
	}

	if _, err := s.DropPartitionsBefore(ctx, time.Now().Add(time.Hour)); err == nil {
		t.Error("DropPartitionsBefore a future cutoff: no error")
	}
	// Mid-February: only January lies entirely before it.
	dropped, err := s.DropPartitionsBefore(ctx, jan.AddDate(0, 1, 14))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dropped, []string{"events_p202001"}) {
		t.Fatalf("dropped %v, want [events_p202001]", dropped)
	}
	for _, e := range []domain.Event{e1, e2} {
		if _, err := s.Get(ctx, e.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Get of a dropped event: %v, want ErrNotFound", err)
		}
		if _, err := s.History(ctx, e.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("History of a dropped event: %v, want ErrNotFound", err)
		}
	}
	for _, e := range []domain.Event{e3, e4, old} {
		if _, err := s.Get(ctx, e.ID); err != nil {
			t.Errorf("Get of a kept event: %v", err)
		}
	}
	var ids, tables int
	if err := s.db.GetContext(ctx, &ids, `SELECT count(*) FROM event_ids WHERE recorded_at < '2020-02-01'`); err != nil {
		t.Fatal(err)
	}
	if ids != 1 { // the 2019 event's
		t.Errorf("%d event_ids rows before February are left, want 1", ids)
	}
	if err := s.db.GetContext(ctx, &tables, `
		SELECT count(*) FROM pg_class
		WHERE relname IN ('events_p202001', 'event_status_history_p202001')
		  AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())`); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("%d January partitions are left, want 0", tables)
	}
	// The feed shows the kept events' changes only; the dropped month's
	// change rows stay as tombstones (later links of their users follow
	// theirs), so the chains still verify, those two taken as stored.
	feed, err := s.Changes(ctx, domain.ChangeFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, c := range feed {
		changes = append(changes, c.Event.ID.String())
	}
	if want := []string{e3.ID.String(), e4.ID.String(), old.ID.String()}; !sameSet(changes, want) {
		t.Errorf("the feed after dropping January: %v, want %v (e3, e4, old)", changes, want)
	}
	if res := verifyStore(t, s); !res.OK || res.Checked != 5 || res.Pruned != 2 {
		t.Errorf("verification after retention: %+v, first broken %+v; want ok over 5 changes, 2 pruned", res, res.FirstBroken)
	}
	// An event deleted in a month retention kept is a deletion, not retention.
	if _, err := s.db.ExecContext(ctx, `DELETE FROM events WHERE id = $1`, e4.ID.String()); err != nil {
		t.Fatal(err)
	}
	if res := verifyStore(t, s); res.OK || res.FirstBroken.Reason != domain.BreakMissing || *res.FirstBroken.EventID != e4.ID {
		t.Errorf("verification after deleting a kept event: %+v, first broken %+v; want missing, e4", res, res.FirstBroken)
	}
	if _, err := s.CreateMany(ctx, []domain.Event{e4}, "test"); err != nil { // as it was, for what follows
		t.Fatal(err)
	}
	// The id is free again, in a month that has a partition or not.
	if _, created, err := s.Create(ctx, e1, "test"); err != nil || !created {
		t.Errorf("re-create a dropped id: created=%v, %v", created, err)
	}

	// Idempotent, and dropping up to April 1st takes February and March.
	dropped, err = s.DropPartitionsBefore(ctx, jan.AddDate(0, 3, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dropped, []string{"events_p202002", "events_p202003"}) {
		t.Errorf("dropped %v, want [events_p202002 events_p202003]", dropped)
	}
	if _, err := s.Get(ctx, old.ID); err != nil {
		t.Errorf("an event in DEFAULT is kept: %v", err)
	}
	parts, err := s.Partitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) == 0 || parts[0].Name != "events_p202004" {
		t.Errorf("partitions left: %+v", parts)
	}
}

// TestDropPartitionsConcurrently: replicas running retention at once drop
// each partition once and report no error.
func TestDropPartitionsConcurrently(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	jan := time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, m := range []time.Time{jan, jan.AddDate(0, 4, 0)} { // 2019-01 .. 2019-08
		if err := s.EnsurePartitions(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for m := range 8 {
		if _, _, err := s.Create(ctx, mkEvent(1, "login", jan.AddDate(0, m, 3)), "x"); err != nil {
			t.Fatal(err)
		}
	}
	const replicas = 4
	results := make([][]string, replicas)
	errs := make([]error, replicas)
	done := make(chan int)
	for i := range replicas {
		go func() {
			results[i], errs[i] = s.DropPartitionsBefore(ctx, jan.AddDate(0, 6, 0))
			done <- i
		}()
	}
	for range replicas {
		<-done
	}
	var all []string
	for i := range replicas {
		if errs[i] != nil {
			t.Errorf("replica %d: %v", i, errs[i])
		}
		all = append(all, results[i]...)
	}
	slices.Sort(all)
	want := []string{"events_p201901", "events_p201902", "events_p201903", "events_p201904", "events_p201905", "events_p201906"}
	if !slices.Equal(all, want) {
		t.Errorf("dropped %v together, want each of %v once", all, want)
	}
	var n int
	if err := s.db.GetContext(ctx, &n, `SELECT count(*) FROM events`); err != nil || n != 2 {
		t.Errorf("%d events left (%v), want 2", n, err)
	}
}

// clientID is a version-4 UUID standing for an id a client chose: its time
// tells nothing, so the store claims it in event_ids.
func clientID(n byte) domain.ID {
	id := domain.ID{0: n, 6: 0x40, 8: 0x80, 15: n}
	return id
}

// verifyStore walks every chain record of s through domain.Verifier.
func verifyStore(t *testing.T, s *Store) domain.Result {
	t.Helper()
	v := domain.NewVerifier(nil, nil, true)
	for after := int64(0); ; {
		rs, err := s.ChainRecords(t.Context(), domain.ChangeFilter{After: after, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			v.Add(r)
			after = r.Entry.Position
		}
		if len(rs) < 100 {
			return v.Finish(0)
		}
	}
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
