// Package storagetest is the contract suite every storage adapter must
// pass, in the spirit of testing/fstest: an adapter's test calls Run with a
// function that opens a fresh, empty, migrated store, and the suite checks
// the behaviour ports.Store promises — round trips, idempotent creates,
// filters, keyset paging, compare-and-set status changes, counting (the
// computed windows, their watermark and their listing) and tokens —
// including under concurrency.
//
// The suite passes only normalised times (UTC, microseconds) and canonical
// metadata, as the app does: a store does not validate its input.
package storagetest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// Run runs the contract suite. open must return a fresh, empty, migrated
// store for each call and register its own cleanup (closing the store) with
// t.Cleanup. Each subtest opens its own store; subtests do not run in
// parallel, so open may reuse one database it empties.
func Run(t *testing.T, open func(t *testing.T) ports.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s ports.Store)
	}{
		{"CreateGetRoundTrip", testCreateGetRoundTrip},
		{"CreateIdempotent", testCreateIdempotent},
		{"CreateConcurrentSameID", testCreateConcurrentSameID},
		{"CreateMany", testCreateMany},
		{"CreateManyEmpty", testCreateManyEmpty},
		{"CanceledContextStoresNothing", testCanceledContext},
		{"NotFound", testNotFound},
		{"ListFilters", testListFilters},
		{"ListHalfOpenRange", testListHalfOpenRange},
		{"ListTiesBrokenByID", testListTies},
		{"KeysetPaging", testKeysetPaging},
		{"KeysetPagingUnderConcurrentInserts", testPagingConcurrentInserts},
		{"SetStatusCompareAndSet", testSetStatusCAS},
		{"SetStatusStaleFrom", testSetStatusStale},
		{"CountWindow", testCountWindow},
		{"ComputeWindow", testComputeWindow},
		{"ComputeWindowIdempotent", testComputeIdempotent},
		{"ComputeWindowConcurrent", testComputeConcurrent},
		{"CountWatermark", testCountWatermark},
		{"ListCountsFiltersAndPaging", testListCounts},
		{"Tokens", testTokens},
		{"TokenCreatedAfterUnknownLookup", testTokenAfterUnknown},
		{"PingAndMigrateAgain", testPingMigrate},
		{"PingAfterClose", testPingAfterClose},
		{"CacheLedger", testCacheLedger},
		{"Import", testImport},
		{"LegacyIDs", testLegacyIDs},
		{"Changes", testChanges},
		{"ChangesConcurrent", testChangesConcurrent},
		{"Erase", testErase},
		{"Chains", testChains},
		{"ChainsConcurrent", testChainsConcurrent},
		{"Checkpoints", testCheckpoints},
	}
	runSubtests(t, open, tests)
}

// runSubtests runs each test as a subtest on a store of its own.
func runSubtests[S comparable](t *testing.T, open func(t *testing.T) S, tests []struct {
	name string
	fn   func(t *testing.T, s S)
}) {
	t.Helper()
	var none S
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			if s == none {
				t.Fatal("open returned a nil store")
			}
			tc.fn(t, s)
		})
	}
}

// t0 is the suite's reference instant: it has a non-zero microsecond part so
// that a store keeping only milliseconds fails the round trips.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)

// at returns t0 shifted by d, normalised.
func at(d time.Duration) time.Time { return domain.Normalize(t0.Add(d)) }

// newEvent builds an event as domain.Limits.Validate would: a fresh UUIDv7,
// status PENDING, updated_at = recorded_at, canonical metadata.
func newEvent(t *testing.T, user int64, action string, recorded, occurred time.Time, metadata string) domain.Event {
	t.Helper()
	if metadata == "" {
		metadata = "{}"
	}
	md, err := domain.CanonicalObject([]byte(metadata))
	if err != nil {
		t.Fatalf("metadata %s: %v", metadata, err)
	}
	recorded, occurred = domain.Normalize(recorded), domain.Normalize(occurred)
	return domain.Event{
		ID:         domain.NewID(recorded),
		UserID:     user,
		Action:     domain.Action(action),
		Status:     domain.StatusPending,
		OccurredAt: occurred,
		RecordedAt: recorded,
		UpdatedAt:  recorded,
		Metadata:   md,
	}
}

func mustCreate(t *testing.T, s ports.Store, e domain.Event, by string) domain.Event {
	t.Helper()
	got, created, err := s.Create(t.Context(), e, by)
	if err != nil {
		t.Fatalf("Create(%s): %v", e.ID, err)
	}
	if !created {
		t.Fatalf("Create(%s): created = false for a new id", e.ID)
	}
	return got
}

func mustCreateMany(t *testing.T, s ports.Store, es []domain.Event) {
	t.Helper()
	res, err := s.CreateMany(t.Context(), es, "fixture")
	if err != nil {
		t.Fatalf("CreateMany(%d events): %v", len(es), err)
	}
	if len(res) != len(es) {
		t.Fatalf("CreateMany: %d results for %d events", len(res), len(es))
	}
	for i, r := range res {
		if !r.Created {
			t.Fatalf("CreateMany: result %d (%s) not created", i, es[i].ID)
		}
	}
}

// diffEvent describes how got differs from want, or returns "".
func diffEvent(got, want domain.Event) string {
	var d []string
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("id %s, want %s", got.ID, want.ID))
	}
	if got.UserID != want.UserID {
		d = append(d, fmt.Sprintf("user_id %d, want %d", got.UserID, want.UserID))
	}
	if got.Action != want.Action {
		d = append(d, fmt.Sprintf("action %q, want %q", got.Action, want.Action))
	}
	if got.Status != want.Status {
		d = append(d, fmt.Sprintf("status %q, want %q", got.Status, want.Status))
	}
	for _, tf := range []struct {
		name      string
		got, want time.Time
	}{
		{"occurred_at", got.OccurredAt, want.OccurredAt},
		{"recorded_at", got.RecordedAt, want.RecordedAt},
		{"updated_at", got.UpdatedAt, want.UpdatedAt},
	} {
		if s := diffTime(tf.got, tf.want); s != "" {
			d = append(d, tf.name+" "+s)
		}
	}
	if !bytes.Equal(got.Metadata, want.Metadata) {
		d = append(d, fmt.Sprintf("metadata %s, want %s", got.Metadata, want.Metadata))
	}
	return strings.Join(d, "; ")
}

// diffTime requires the same instant, in UTC.
func diffTime(got, want time.Time) string {
	if !got.Equal(want) {
		return fmt.Sprintf("%s, want %s", got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
	if !want.IsZero() && got.Location() != time.UTC {
		return fmt.Sprintf("in location %s, want UTC", got.Location())
	}
	return ""
}

func checkEvent(t *testing.T, what string, got, want domain.Event) {
	t.Helper()
	if d := diffEvent(got, want); d != "" {
		t.Errorf("%s: %s", what, d)
	}
}

func checkHistory(t *testing.T, s ports.Store, id domain.ID, want []domain.Transition) {
	t.Helper()
	got, err := s.History(t.Context(), id)
	if err != nil {
		t.Fatalf("History(%s): %v", id, err)
	}
	if len(got) != len(want) {
		t.Fatalf("History(%s) = %d entries %+v, want %d %+v", id, len(got), got, len(want), want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.From != w.From || g.To != w.To || g.By != w.By || diffTime(g.At, w.At) != "" {
			t.Errorf("History(%s)[%d] = {%q→%q at %s by %q}, want {%q→%q at %s by %q}", id, i,
				g.From, g.To, g.At.Format(time.RFC3339Nano), g.By, w.From, w.To, w.At.Format(time.RFC3339Nano), w.By)
		}
	}
}

func ids(es []domain.Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID.String()
	}
	return out
}

// checkEvents requires got to be want, in order, field by field.
func checkEvents(t *testing.T, what string, got, want []domain.Event) {
	t.Helper()
	if g, w := ids(got), ids(want); !slices.Equal(g, w) {
		i := 0
		for i < len(g) && i < len(w) && g[i] == w[i] {
			i++
		}
		if len(g) <= 20 && len(w) <= 20 {
			t.Errorf("%s: got %d events %v,\nwant %d %v", what, len(g), g, len(w), w)
		} else {
			t.Errorf("%s: got %d events, want %d; first difference at index %d: got %v, want %v",
				what, len(g), len(w), i, g[i:min(i+3, len(g))], w[i:min(i+3, len(w))])
		}
		return
	}
	for i := range want {
		if d := diffEvent(got[i], want[i]); d != "" {
			t.Errorf("%s: event %d: %s", what, i, d)
		}
	}
}

// --- model: what a listing must return, computed independently ---

func modelSort(f domain.Filter, es []domain.Event) {
	slices.SortFunc(es, func(a, b domain.Event) int {
		c := cmp.Or(f.TimeOf(a).Compare(f.TimeOf(b)), bytes.Compare(a.ID[:], b.ID[:]))
		if f.Order == domain.Desc {
			return -c
		}
		return c // Asc, and the zero Order (see domain.Filter)
	})
}

// modelList returns every event f selects, in f's order, ignoring After,
// Offset and Limit.
func modelList(f domain.Filter, all []domain.Event) []domain.Event {
	var out []domain.Event
	for _, e := range all {
		if f.UserID != 0 && e.UserID != f.UserID {
			continue
		}
		if len(f.Actions) > 0 && !slices.Contains(f.Actions, e.Action) {
			continue
		}
		if f.Status != "" && e.Status != f.Status {
			continue
		}
		tm := f.TimeOf(e)
		if !f.From.IsZero() && tm.Before(f.From) {
			continue
		}
		if !f.To.IsZero() && !tm.Before(f.To) {
			continue
		}
		out = append(out, e)
	}
	modelSort(f, out)
	return out
}

// modelPage returns the page f selects and whether more events follow.
func modelPage(f domain.Filter, all []domain.Event) ([]domain.Event, bool) {
	es := modelList(f, all)
	if c := f.After; c != nil {
		i := slices.IndexFunc(es, func(e domain.Event) bool {
			k := cmp.Or(f.TimeOf(e).Compare(c.Time), bytes.Compare(e.ID[:], c.ID[:]))
			if f.Order == domain.Desc {
				return k < 0
			}
			return k > 0
		})
		if i < 0 {
			i = len(es)
		}
		es = es[i:]
	}
	es = es[min(f.Offset, len(es)):]
	limit := cmp.Or(f.Limit, domain.DefaultLimit)
	if len(es) > limit {
		return es[:limit], true
	}
	return es, false
}

func checkCursor(t *testing.T, what string, got, want *domain.Cursor) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil:
		t.Errorf("%s: Next = nil, want a cursor after %s", what, want.ID)
	case want == nil:
		t.Errorf("%s: Next = %+v, want nil (last page)", what, *got)
	default:
		if got.ID != want.ID || !got.Time.Equal(want.Time) || got.TimeField != want.TimeField || got.Order != want.Order {
			t.Errorf("%s: Next = {%s %s %q %q}, want {%s %s %q %q}", what,
				got.Time.Format(time.RFC3339Nano), got.ID, got.TimeField, got.Order,
				want.Time.Format(time.RFC3339Nano), want.ID, want.TimeField, want.Order)
		}
	}
}

// checkList lists f from s and compares the page with the model's.
func checkList(t *testing.T, s ports.Store, what string, f domain.Filter, all []domain.Event) domain.Page {
	t.Helper()
	page, err := s.List(t.Context(), f)
	if err != nil {
		t.Fatalf("%s: List: %v", what, err)
	}
	want, more := modelPage(f, all)
	checkEvents(t, what, page.Events, want)
	var next *domain.Cursor
	if more {
		next = f.CursorAfter(want[len(want)-1])
	}
	checkCursor(t, what, page.Next, next)
	return page
}

// --- tests ---

func testCreateGetRoundTrip(t *testing.T, s ports.Store) {
	ctx := t.Context()
	metadata := `{"path":"/tmp/ü✓.txt","size":12345678901234567890,"ratio":1.50,"tags":["a","b"],"nested":{"ok":true,"none":null},"quote":"\"<&>\""}`
	e := newEvent(t, 42, "upload_file", at(3*time.Hour+7*time.Microsecond), at(-2*time.Hour+999_999*time.Microsecond), metadata)
	got, created, err := s.Create(ctx, e, "token:abc")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if !created {
		t.Fatal("Create: created = false for a new id")
	}
	checkEvent(t, "Create returned", got, e)

	stored, err := s.Get(ctx, e.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkEvent(t, "Get", stored, e)
	if stored.Status != domain.StatusPending {
		t.Errorf("Get: status %q, want PENDING", stored.Status)
	}
	checkHistory(t, s, e.ID, []domain.Transition{{From: "", To: domain.StatusPending, At: e.RecordedAt, By: "token:abc"}})

	// A second event with an empty metadata object and times far apart.
	e2 := newEvent(t, 1, "login", time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC), time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC), "{}")
	mustCreate(t, s, e2, "jwt:1")
	stored2, err := s.Get(ctx, e2.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkEvent(t, "Get second event", stored2, e2)
	// The first is unaffected.
	stored, _ = s.Get(ctx, e.ID)
	checkEvent(t, "Get first event after second create", stored, e)

	// The returned metadata must not alias the store's copy.
	stored.Metadata[0] = 'X'
	again, _ := s.Get(ctx, e.ID)
	checkEvent(t, "Get after mutating a returned event", again, e)
}

func testCreateIdempotent(t *testing.T, s ports.Store) {
	ctx := t.Context()
	orig := newEvent(t, 7, "login", at(0), at(-time.Minute), `{"a":1}`)
	mustCreate(t, s, orig, "first")

	retry := orig
	retry.UserID = 8
	retry.Action = "deleted"
	retry.Metadata = json.RawMessage(`{"b":2}`)
	retry.RecordedAt = at(time.Hour)
	retry.OccurredAt = at(time.Hour)
	retry.UpdatedAt = at(time.Hour)
	got, created, err := s.Create(ctx, retry, "second")
	if err != nil {
		t.Fatalf("Create with an existing id: %v", err)
	}
	if created {
		t.Error("Create with an existing id: created = true, want false")
	}
	checkEvent(t, "Create with an existing id returned", got, orig)

	stored, err := s.Get(ctx, orig.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkEvent(t, "Get after the retry", stored, orig)
	checkHistory(t, s, orig.ID, []domain.Transition{{To: domain.StatusPending, At: orig.RecordedAt, By: "first"}})
	for _, user := range []int64{0, 7, 8} {
		checkList(t, s, fmt.Sprintf("List user %d after the retry", user),
			domain.Filter{UserID: user, Order: domain.Desc, Limit: 10}, []domain.Event{orig})
	}
}

func testCreateConcurrentSameID(t *testing.T, s ports.Store) {
	ctx := t.Context()
	e := newEvent(t, 3, "viewed", at(0), at(0), `{"n":1}`)
	const n = 20
	var createdCount atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			got, created, err := s.Create(ctx, e, fmt.Sprintf("worker-%d", i))
			if err != nil {
				t.Errorf("Create #%d: %v", i, err)
				return
			}
			if created {
				createdCount.Add(1)
			}
			if d := diffEvent(got, e); d != "" {
				t.Errorf("Create #%d returned: %s", i, d)
			}
		})
	}
	close(start)
	wg.Wait()
	if c := createdCount.Load(); c != 1 {
		t.Errorf("%d concurrent Creates of one id: %d reported created, want exactly 1", n, c)
	}
	checkList(t, s, "List after concurrent creates", domain.Filter{Order: domain.Desc, Limit: 100}, []domain.Event{e})
	h, err := s.History(ctx, e.ID)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if len(h) != 1 || h[0].To != domain.StatusPending || !strings.HasPrefix(h[0].By, "worker-") {
		t.Errorf("History after concurrent creates = %+v, want one PENDING entry by a worker", h)
	}
}

func testCreateMany(t *testing.T, s ports.Store) {
	ctx := t.Context()
	existing := newEvent(t, 5, "login", at(-time.Hour), at(-time.Hour), `{"pre":true}`)
	mustCreate(t, s, existing, "earlier")

	a := newEvent(t, 5, "upload_file", at(1*time.Second), at(0), `{"file":"a"}`)
	b := newEvent(t, 6, "viewed", at(2*time.Second), at(time.Second), `{}`)
	c := newEvent(t, 5, "logout", at(3*time.Second), at(2*time.Second), `{"x":[1,2]}`)
	aDup := newEvent(t, 9, "deleted", at(4*time.Second), at(4*time.Second), `{"file":"other"}`)
	aDup.ID = a.ID
	existingDup := newEvent(t, 9, "created", at(5*time.Second), at(5*time.Second), `{"other":1}`)
	existingDup.ID = existing.ID

	batch := []domain.Event{a, b, aDup, existingDup, c}
	res, err := s.CreateMany(ctx, batch, "batcher")
	if err != nil {
		t.Fatalf("CreateMany: %v", err)
	}
	want := []ports.Created{
		{Event: a, Created: true}, {Event: b, Created: true}, {Event: a, Created: false},
		{Event: existing, Created: false}, {Event: c, Created: true},
	}
	if len(res) != len(want) {
		t.Fatalf("CreateMany returned %d results for %d events", len(res), len(batch))
	}
	for i := range want {
		if res[i].Created != want[i].Created {
			t.Errorf("CreateMany result %d: created = %v, want %v", i, res[i].Created, want[i].Created)
		}
		checkEvent(t, fmt.Sprintf("CreateMany result %d", i), res[i].Event, want[i].Event)
	}

	all := []domain.Event{existing, a, b, c}
	checkList(t, s, "List after CreateMany", domain.Filter{Order: domain.Asc, Limit: 100}, all)
	checkList(t, s, "List user 9 after CreateMany", domain.Filter{UserID: 9, Order: domain.Desc, Limit: 100}, all)
	for _, e := range []domain.Event{a, b, c} {
		got, err := s.Get(ctx, e.ID)
		if err != nil {
			t.Fatalf("Get(%s): %v", e.ID, err)
		}
		checkEvent(t, "Get after CreateMany", got, e)
		checkHistory(t, s, e.ID, []domain.Transition{{To: domain.StatusPending, At: e.RecordedAt, By: "batcher"}})
	}
	checkHistory(t, s, existing.ID, []domain.Transition{{To: domain.StatusPending, At: existing.RecordedAt, By: "earlier"}})

	// A large batch, as the HTTP API allows (1000 events).
	big := make([]domain.Event, 1000)
	for i := range big {
		big[i] = newEvent(t, int64(100+i%10), "viewed", at(time.Minute+time.Duration(i)*time.Microsecond), at(0), fmt.Sprintf(`{"i":%d}`, i))
	}
	mustCreateMany(t, s, big)
	page, err := s.List(ctx, domain.Filter{UserID: 103, Order: domain.Asc, Limit: 1000})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(page.Events) != 100 {
		t.Errorf("List user 103 after a 1000-event batch: %d events, want 100", len(page.Events))
	}
}

func testCreateManyEmpty(t *testing.T, s ports.Store) {
	res, err := s.CreateMany(t.Context(), nil, "nobody")
	if err != nil {
		t.Fatalf("CreateMany(nil): %v", err)
	}
	if len(res) != 0 {
		t.Errorf("CreateMany(nil) = %d results, want 0", len(res))
	}
}

func testCanceledContext(t *testing.T, s ports.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	e := newEvent(t, 1, "login", at(0), at(0), "")
	if _, _, err := s.Create(ctx, e, "x"); err == nil {
		t.Error("Create with a canceled context: no error")
	}
	f := newEvent(t, 1, "login", at(time.Second), at(0), "")
	if _, err := s.CreateMany(ctx, []domain.Event{f}, "x"); err == nil {
		t.Error("CreateMany with a canceled context: no error")
	}
	for _, id := range []domain.ID{e.ID, f.ID} {
		if _, err := s.Get(t.Context(), id); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("Get(%s) after a canceled create: err = %v, want ErrNotFound", id, err)
		}
	}

	g := mustCreate(t, s, newEvent(t, 1, "login", at(0), at(0), ""), "x")
	if _, err := s.SetStatus(ctx, g.ID, domain.StatusPending, domain.StatusInProgress, at(time.Minute), "x"); err == nil {
		t.Error("SetStatus with a canceled context: no error")
	}
	got, err := s.Get(t.Context(), g.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Status != domain.StatusPending {
		t.Errorf("status after a canceled SetStatus = %q, want PENDING", got.Status)
	}
}

func testNotFound(t *testing.T, s ports.Store) {
	ctx := t.Context()
	// One event exists, so "not found" is not just "empty table".
	mustCreate(t, s, newEvent(t, 1, "login", at(0), at(0), ""), "x")
	unknown := domain.NewID(t0)
	if _, err := s.Get(ctx, unknown); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Get(unknown): err = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, domain.ID{}); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Get(nil UUID): err = %v, want ErrNotFound", err)
	}
	if _, err := s.History(ctx, unknown); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("History(unknown): err = %v, want ErrNotFound", err)
	}
	_, err := s.SetStatus(ctx, unknown, domain.StatusPending, domain.StatusInProgress, at(time.Minute), "x")
	if !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("SetStatus(unknown): err = %v, want ErrNotFound", err)
	}
	if errors.Is(err, domain.ErrStatusConflict) {
		t.Errorf("SetStatus(unknown): err = %v also matches ErrStatusConflict", err)
	}
	if _, err := s.Get(ctx, unknown); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Get(unknown) after SetStatus(unknown): err = %v, want ErrNotFound", err)
	}
}

// listFixture stores 64 events of users 1..3 with four actions, ties on both
// times, occurred_at ordered differently from recorded_at, and some events
// moved to IN_PROGRESS and DONE. It returns them as stored.
func listFixture(t *testing.T, s ports.Store) []domain.Event {
	t.Helper()
	actions := []string{"login", "logout", "upload_file", "viewed"}
	es := make([]domain.Event, 64)
	for i := range es {
		recorded := at(time.Duration(i/4) * time.Second)                                           // 4 events per recorded time
		occurred := at(-time.Duration((i*7)%13)*time.Minute + time.Duration(i%3)*time.Microsecond) // ties, other order
		es[i] = newEvent(t, int64(1+i%3), actions[(i/3)%4], recorded, occurred, fmt.Sprintf(`{"i":%d}`, i))
	}
	mustCreateMany(t, s, es[:40])
	for _, e := range es[40:] {
		mustCreate(t, s, e, "fixture")
	}
	for i := range es {
		if i%5 != 0 {
			continue
		}
		when := at(time.Hour + time.Duration(i)*time.Millisecond)
		e, err := s.SetStatus(t.Context(), es[i].ID, domain.StatusPending, domain.StatusInProgress, when, "fixture")
		if err != nil {
			t.Fatalf("SetStatus: %v", err)
		}
		es[i].Status, es[i].UpdatedAt = domain.StatusInProgress, when
		checkEvent(t, "SetStatus returned", e, es[i])
		if i%10 == 0 {
			when = when.Add(time.Second)
			if _, err := s.SetStatus(t.Context(), es[i].ID, domain.StatusInProgress, domain.StatusDone, when, "fixture"); err != nil {
				t.Fatalf("SetStatus: %v", err)
			}
			es[i].Status, es[i].UpdatedAt = domain.StatusDone, when
		}
	}
	return es
}

func testListFilters(t *testing.T, s ports.Store) {
	all := listFixture(t, s)
	const (
		desc = domain.Desc
		asc  = domain.Asc
		rec  = domain.ByRecordedAt
		occ  = domain.ByOccurredAt
	)
	acts := func(as ...domain.Action) []domain.Action { return as }
	cases := []struct {
		name string
		f    domain.Filter
		n    int // expected page size, as a check on the model itself
	}{
		{"all desc", domain.Filter{Order: desc, Limit: 100}, 64},
		{"all asc", domain.Filter{Order: asc, Limit: 100}, 64},
		{"zero order is asc", domain.Filter{Limit: 100}, 64},
		{"zero order is asc occurred_at", domain.Filter{UserID: 2, TimeField: occ, Limit: 5}, 5},
		{"all desc recorded_at explicit", domain.Filter{TimeField: rec, Order: desc, Limit: 100}, 64},
		{"all desc occurred_at", domain.Filter{TimeField: occ, Order: desc, Limit: 100}, 64},
		{"all asc occurred_at", domain.Filter{TimeField: occ, Order: asc, Limit: 100}, 64},
		{"user", domain.Filter{UserID: 2, Order: desc, Limit: 100}, 21},
		{"user asc occurred_at", domain.Filter{UserID: 3, TimeField: occ, Order: asc, Limit: 100}, 21},
		{"unknown user", domain.Filter{UserID: 99, Order: desc, Limit: 100}, 0},
		{"one action", domain.Filter{Actions: acts("logout"), Order: desc, Limit: 100}, 16},
		{"several actions", domain.Filter{Actions: acts("login", "upload_file", "viewed"), Order: asc, Limit: 100}, 48},
		{"user and one action", domain.Filter{UserID: 1, Actions: acts("viewed"), Order: desc, Limit: 100}, -1},
		{"user and several actions", domain.Filter{UserID: 2, Actions: acts("login", "viewed"), Order: desc, Limit: 100}, -1},
		{"user and several actions occurred_at", domain.Filter{UserID: 2, Actions: acts("login", "viewed"), TimeField: occ, Order: asc, Limit: 100}, -1},
		{"unknown action", domain.Filter{Actions: acts("created"), Order: desc, Limit: 100}, 0},
		{"status PENDING", domain.Filter{Status: domain.StatusPending, Order: desc, Limit: 100}, 51},
		{"status IN_PROGRESS", domain.Filter{Status: domain.StatusInProgress, Order: asc, Limit: 100}, 6},
		{"status DONE and user", domain.Filter{Status: domain.StatusDone, UserID: 1, Order: desc, Limit: 100}, -1},
		{"status DONE occurred_at", domain.Filter{Status: domain.StatusDone, TimeField: occ, Order: asc, Limit: 100}, 7},
		{"from and to recorded_at", domain.Filter{From: at(2 * time.Second), To: at(6 * time.Second), Order: desc, Limit: 100}, 16},
		{"from and to recorded_at asc", domain.Filter{From: at(2 * time.Second), To: at(6 * time.Second), Order: asc, Limit: 100}, 16},
		{"from only recorded_at", domain.Filter{From: at(14 * time.Second), Order: asc, Limit: 100}, 8},
		{"to only recorded_at", domain.Filter{To: at(time.Second), Order: desc, Limit: 100}, 4},
		{"from and to occurred_at", domain.Filter{TimeField: occ, From: at(-6 * time.Minute), To: at(-2 * time.Minute), Order: desc, Limit: 100}, -1},
		{"to only occurred_at asc", domain.Filter{TimeField: occ, To: at(-10 * time.Minute), Order: asc, Limit: 100}, -1},
		{"empty range", domain.Filter{From: at(time.Second), To: at(time.Second), Order: desc, Limit: 100}, 0},
		{"everything combined", domain.Filter{UserID: 1, Actions: acts("login", "logout", "viewed"), Status: domain.StatusPending,
			From: at(3 * time.Second), To: at(13 * time.Second), Order: desc, Limit: 100}, -1},
		{"everything combined occurred_at", domain.Filter{UserID: 2, Actions: acts("login", "upload_file"), Status: domain.StatusPending,
			TimeField: occ, From: at(-11 * time.Minute), To: at(-1 * time.Minute), Order: asc, Limit: 100}, -1},
		{"limit desc", domain.Filter{Order: desc, Limit: 5}, 5},
		{"limit asc occurred_at", domain.Filter{TimeField: occ, Order: asc, Limit: 5}, 5},
		{"limit equal to matches", domain.Filter{UserID: 2, Order: desc, Limit: 21}, 21},
		{"limit one over matches", domain.Filter{UserID: 2, Order: desc, Limit: 22}, 21},
		{"limit one under matches", domain.Filter{UserID: 2, Order: desc, Limit: 20}, 20},
		{"default limit", domain.Filter{Order: desc}, domain.DefaultLimit},
		{"offset and limit desc", domain.Filter{Order: desc, Limit: 5, Offset: 3}, 5},
		{"offset and limit asc user", domain.Filter{UserID: 1, Order: asc, Limit: 4, Offset: 7}, 4},
		{"offset near the end", domain.Filter{Order: desc, Limit: 10, Offset: 60}, 4},
		{"offset past the end", domain.Filter{Order: desc, Limit: 10, Offset: 64}, 0},
		{"offset with filters occurred_at", domain.Filter{Actions: acts("viewed", "login"), TimeField: occ, Order: desc, Limit: 3, Offset: 2}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			page := checkList(t, s, tc.name, tc.f, all)
			if tc.n >= 0 && len(page.Events) != tc.n {
				t.Errorf("%s: %d events, want %d", tc.name, len(page.Events), tc.n)
			}
			if tc.n < 0 && len(page.Events) == 0 {
				t.Errorf("%s: fixture selects nothing; the case tests nothing", tc.name)
			}
		})
	}

	// A cursor outside the range (a client that changed from/to but kept its
	// cursor): the range still applies.
	for _, tc := range []struct {
		name string
		f    domain.Filter
	}{
		{"cursor after the range desc", domain.Filter{From: at(2 * time.Second), To: at(6 * time.Second), Order: desc, Limit: 100,
			After: &domain.Cursor{Time: at(9 * time.Second), ID: all[37].ID, TimeField: rec, Order: desc}}},
		{"cursor before the range asc", domain.Filter{From: at(2 * time.Second), To: at(6 * time.Second), Order: asc, Limit: 100,
			After: &domain.Cursor{Time: at(1 * time.Second), ID: all[5].ID, TimeField: rec, Order: asc}}},
		{"cursor at the range's end desc", domain.Filter{UserID: 1, To: at(6 * time.Second), Order: desc, Limit: 100,
			After: &domain.Cursor{Time: at(6 * time.Second), ID: domain.ID{0xff}, TimeField: rec, Order: desc}}},
		{"cursor at the range's start asc", domain.Filter{UserID: 1, From: at(6 * time.Second), Order: asc, Limit: 100,
			After: &domain.Cursor{Time: at(6 * time.Second), ID: domain.ID{}, TimeField: rec, Order: asc}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page := checkList(t, s, tc.name, tc.f, all)
			if len(page.Events) == 0 {
				t.Errorf("%s: fixture selects nothing; the case tests nothing", tc.name)
			}
		})
	}

	// After a cursor taken from the middle of a filtered listing.
	for _, order := range []domain.Order{desc, asc} {
		for _, tf := range []domain.TimeField{rec, occ} {
			name := fmt.Sprintf("after cursor %s %s", tf, order)
			t.Run(name, func(t *testing.T) {
				f := domain.Filter{UserID: 1, Actions: acts("login", "logout", "upload_file"), TimeField: tf, Order: order, Limit: 100}
				full := modelList(f, all)
				if len(full) < 6 {
					t.Fatalf("fixture selects %d events, want ≥ 6", len(full))
				}
				f.After = f.CursorAfter(full[2])
				f.Limit = 2
				page := checkList(t, s, name, f, all)
				if len(page.Events) != 2 {
					t.Errorf("%s: %d events, want 2", name, len(page.Events))
				}
			})
		}
	}
}

func testListHalfOpenRange(t *testing.T, s ports.Store) {
	from, to := at(10*time.Second), at(20*time.Second)
	other := at(-time.Hour) // the time not under test, outside every range
	offsets := []struct {
		name string
		t    time.Time
		in   bool
	}{
		{"from-1µs", from.Add(-time.Microsecond), false},
		{"from", from, true},
		{"from+1µs", from.Add(time.Microsecond), true},
		{"to-1µs", to.Add(-time.Microsecond), true},
		{"to", to, false},
		{"to+1µs", to.Add(time.Microsecond), false},
	}
	for i, tf := range []domain.TimeField{domain.ByRecordedAt, domain.ByOccurredAt} {
		user := int64(10 + i)
		var want []domain.Event // in ascending time order
		for _, o := range offsets {
			var e domain.Event
			if tf == domain.ByRecordedAt {
				e = newEvent(t, user, "login", o.t, other, "")
			} else {
				e = newEvent(t, user, "login", other, o.t, "")
			}
			e.Metadata = json.RawMessage(fmt.Sprintf(`{"at":%q}`, o.name))
			mustCreate(t, s, e, "x")
			if o.in {
				want = append(want, e)
			}
		}
		for _, order := range []domain.Order{domain.Asc, domain.Desc} {
			f := domain.Filter{UserID: user, TimeField: tf, From: from, To: to, Order: order, Limit: 100}
			page, err := s.List(t.Context(), f)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			w := slices.Clone(want)
			if order == domain.Desc {
				slices.Reverse(w)
			}
			checkEvents(t, fmt.Sprintf("[from, to) on %s %s", tf, order), page.Events, w)
			if page.Next != nil {
				t.Errorf("[from, to) on %s %s: Next = %+v, want nil", tf, order, page.Next)
			}
		}
	}
}

func testListTies(t *testing.T, s ports.Store) {
	same := at(5 * time.Second)
	var es []domain.Event
	for i := range 12 {
		e := newEvent(t, 4, "viewed", same, same, fmt.Sprintf(`{"i":%d}`, i))
		// Spread ids over the whole space, not in insertion order.
		e.ID[0] = byte(i * 97 % 256)
		es = append(es, e)
	}
	mustCreateMany(t, s, es)
	byID := slices.Clone(es)
	slices.SortFunc(byID, func(a, b domain.Event) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	for _, tf := range []domain.TimeField{domain.ByRecordedAt, domain.ByOccurredAt} {
		for _, order := range []domain.Order{domain.Asc, domain.Desc} {
			page, err := s.List(t.Context(), domain.Filter{UserID: 4, TimeField: tf, Order: order, Limit: 100})
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			w := slices.Clone(byID)
			if order == domain.Desc {
				slices.Reverse(w)
			}
			checkEvents(t, fmt.Sprintf("ties on %s %s", tf, order), page.Events, w)
		}
	}
}

// walk pages through f from its start and returns every event seen and the
// number of pages.
func walk(t *testing.T, s ports.Store, f domain.Filter, between func()) ([]domain.Event, int) {
	t.Helper()
	var got []domain.Event
	seen := map[domain.ID]bool{}
	pages := 0
	for {
		page, err := s.List(t.Context(), f)
		if err != nil {
			t.Fatalf("List page %d: %v", pages+1, err)
		}
		pages++
		if pages > 10_000 {
			t.Fatal("paging does not end")
		}
		for _, e := range page.Events {
			if seen[e.ID] {
				t.Fatalf("page %d: event %s seen twice", pages, e.ID)
			}
			seen[e.ID] = true
		}
		got = append(got, page.Events...)
		if page.Next == nil {
			return got, pages
		}
		if len(page.Events) == 0 {
			t.Fatalf("page %d: empty page with a Next cursor", pages)
		}
		if page.Next.TimeField != f.TimeField || page.Next.Order != f.Order {
			t.Fatalf("page %d: Next made for %s %s, want %s %s", pages, page.Next.TimeField, page.Next.Order, f.TimeField, f.Order)
		}
		if between != nil {
			between()
		}
		f.After = page.Next
	}
}

func testKeysetPaging(t *testing.T, s ports.Store) {
	var all []domain.Event
	// 60 events of user 7 on 4 recorded and 3 occurred instants; 12 of other
	// users on the same instants.
	for i := range 72 {
		user := int64(7)
		if i%6 == 5 {
			user = 8 + int64(i%2)
		}
		action := []string{"login", "viewed", "logout"}[i%3]
		e := newEvent(t, user, action, at(time.Duration(i%4)*time.Second), at(time.Duration(i%3)*time.Minute), "")
		all = append(all, e)
	}
	mustCreateMany(t, s, all[:36])
	mustCreateMany(t, s, all[36:])

	filters := []struct {
		name string
		f    domain.Filter
	}{
		{"all", domain.Filter{}},
		{"user", domain.Filter{UserID: 7}},
		{"user and actions", domain.Filter{UserID: 7, Actions: []domain.Action{"login", "logout"}}},
		{"range", domain.Filter{From: at(time.Second), To: at(3 * time.Second)}},
	}
	for _, fl := range filters {
		for _, tf := range []domain.TimeField{domain.ByRecordedAt, domain.ByOccurredAt} {
			for _, order := range []domain.Order{domain.Desc, domain.Asc, ""} {
				for _, limit := range []int{1, 7, 12} {
					f := fl.f
					f.TimeField, f.Order, f.Limit = tf, order, limit
					if fl.name == "range" && tf == domain.ByOccurredAt {
						f.From, f.To = at(time.Minute), at(3*time.Minute)
					}
					name := fmt.Sprintf("%s/%s/%s/limit=%d", fl.name, tf, cmp.Or(string(order), "zero-order"), limit)
					t.Run(name, func(t *testing.T) {
						want := modelList(f, all)
						if len(want) == 0 {
							t.Fatal("fixture selects nothing")
						}
						got, pages := walk(t, s, f, nil)
						checkEvents(t, name, got, want)
						if wantPages := max(1, (len(want)+limit-1)/limit); pages != wantPages {
							t.Errorf("%s: %d pages for %d events at limit %d, want %d", name, pages, len(want), limit, wantPages)
						}
					})
				}
			}
		}
	}
}

func testPagingConcurrentInserts(t *testing.T, s ports.Store) {
	for i, tf := range []domain.TimeField{domain.ByRecordedAt, domain.ByOccurredAt} {
		t.Run(string(tf), func(t *testing.T) {
			user := int64(5 + i) // a user of its own: the other walk's inserts are not in this one's initial set
			var initial []domain.Event
			for i := range 150 {
				// Three events per instant.
				when := at(time.Duration(i/3) * time.Millisecond)
				initial = append(initial, newEvent(t, user, "viewed", when, when, ""))
			}
			mustCreateMany(t, s, initial)
			newer := func(k int) domain.Event {
				when := at(time.Hour + time.Duration(k)*time.Microsecond)
				return newEvent(t, user, "viewed", when, when, "")
			}
			ctx, stop := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			var inserted atomic.Int64
			started := make(chan struct{}) // closed once the first page is read
			var once sync.Once
			wg.Go(func() {
				select {
				case <-started:
				case <-ctx.Done():
					return
				}
				for k := 0; k < 2000 && ctx.Err() == nil; k++ {
					if _, _, err := s.Create(ctx, newer(k), "writer"); err != nil {
						if ctx.Err() == nil {
							t.Errorf("concurrent Create: %v", err)
						}
						return
					}
					inserted.Add(1)
				}
			})
			k := 1_000_000
			got, _ := walk(t, s, domain.Filter{UserID: user, TimeField: tf, Order: domain.Desc, Limit: 8}, func() {
				once.Do(func() { close(started) })
				// Also insert between pages, so that every page follows a write.
				k++
				mustCreate(t, s, newer(k), "walker")
			})
			stop()
			wg.Wait()
			want := modelList(domain.Filter{TimeField: tf, Order: domain.Desc}, initial)
			checkEvents(t, "desc walk under concurrent inserts", got, want)
			t.Logf("%d events inserted concurrently during the walk", inserted.Load())
		})
	}
}

func testSetStatusCAS(t *testing.T, s ports.Store) {
	ctx := t.Context()
	e := mustCreate(t, s, newEvent(t, 11, "upload_file", at(0), at(-time.Second), `{"k":"v"}`), "creator")
	when := at(time.Minute + 17*time.Microsecond)

	const n = 30
	var wins, conflicts atomic.Int32
	winner := make(chan string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		by := fmt.Sprintf("worker-%d", i)
		wg.Go(func() {
			<-start
			got, err := s.SetStatus(ctx, e.ID, domain.StatusPending, domain.StatusInProgress, when, by)
			switch {
			case err == nil:
				wins.Add(1)
				winner <- by
				want := e
				want.Status, want.UpdatedAt = domain.StatusInProgress, when
				if d := diffEvent(got, want); d != "" {
					t.Errorf("SetStatus by %s returned: %s", by, d)
				}
			case errors.Is(err, domain.ErrStatusConflict):
				conflicts.Add(1)
				if errors.Is(err, domain.ErrNotFound) {
					t.Errorf("SetStatus by %s: err = %v also matches ErrNotFound", by, err)
				}
			default:
				t.Errorf("SetStatus by %s: err = %v, want nil or ErrStatusConflict", by, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if w, c := wins.Load(), conflicts.Load(); w != 1 || c != n-1 {
		t.Fatalf("%d concurrent SetStatus(PENDING→IN_PROGRESS): %d won, %d conflicted; want 1 and %d", n, w, c, n-1)
	}
	by := <-winner

	want := e
	want.Status, want.UpdatedAt = domain.StatusInProgress, when
	got, err := s.Get(ctx, e.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkEvent(t, "Get after the race", got, want)
	checkHistory(t, s, e.ID, []domain.Transition{
		{From: "", To: domain.StatusPending, At: e.RecordedAt, By: "creator"},
		{From: domain.StatusPending, To: domain.StatusInProgress, At: when, By: by},
	})
}

func testSetStatusStale(t *testing.T, s ports.Store) {
	ctx := t.Context()
	e := mustCreate(t, s, newEvent(t, 12, "login", at(0), at(0), ""), "creator")
	other := mustCreate(t, s, newEvent(t, 12, "login", at(time.Second), at(0), ""), "creator")

	// Stale: the event is PENDING, not IN_PROGRESS.
	if _, err := s.SetStatus(ctx, e.ID, domain.StatusInProgress, domain.StatusDone, at(time.Minute), "a"); !errors.Is(err, domain.ErrStatusConflict) {
		t.Errorf("SetStatus with from = IN_PROGRESS on a PENDING event: err = %v, want ErrStatusConflict", err)
	}
	t1, t2 := at(2*time.Minute), at(3*time.Minute+time.Microsecond)
	if _, err := s.SetStatus(ctx, e.ID, domain.StatusPending, domain.StatusInProgress, t1, "a"); err != nil {
		t.Fatalf("SetStatus PENDING→IN_PROGRESS: %v", err)
	}
	if _, err := s.SetStatus(ctx, e.ID, domain.StatusPending, domain.StatusInProgress, at(4*time.Minute), "b"); !errors.Is(err, domain.ErrStatusConflict) {
		t.Errorf("second SetStatus PENDING→IN_PROGRESS: err = %v, want ErrStatusConflict", err)
	}
	got, err := s.SetStatus(ctx, e.ID, domain.StatusInProgress, domain.StatusDone, t2, "c")
	if err != nil {
		t.Fatalf("SetStatus IN_PROGRESS→DONE: %v", err)
	}
	want := e
	want.Status, want.UpdatedAt = domain.StatusDone, t2
	checkEvent(t, "SetStatus IN_PROGRESS→DONE returned", got, want)
	if _, err := s.SetStatus(ctx, e.ID, domain.StatusInProgress, domain.StatusDone, at(5*time.Minute), "d"); !errors.Is(err, domain.ErrStatusConflict) {
		t.Errorf("SetStatus with a stale from on a DONE event: err = %v, want ErrStatusConflict", err)
	}
	got, err = s.Get(ctx, e.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkEvent(t, "Get after the transitions", got, want)
	checkHistory(t, s, e.ID, []domain.Transition{
		{To: domain.StatusPending, At: e.RecordedAt, By: "creator"},
		{From: domain.StatusPending, To: domain.StatusInProgress, At: t1, By: "a"},
		{From: domain.StatusInProgress, To: domain.StatusDone, At: t2, By: "c"},
	})
	// The other event is untouched.
	o, err := s.Get(ctx, other.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	checkEvent(t, "untouched event", o, other)
	checkHistory(t, s, other.ID, []domain.Transition{{To: domain.StatusPending, At: other.RecordedAt, By: "creator"}})
}

func testCountWindow(t *testing.T, s ports.Store) {
	ctx := t.Context()
	start, end := at(4*time.Hour), at(8*time.Hour)
	type ev struct {
		user     int64
		action   string
		recorded time.Time
	}
	evs := []ev{
		{1, "login", start.Add(-time.Microsecond)}, // before
		{1, "login", start},                        // first instant: counted
		{1, "login", start.Add(time.Hour)},
		{1, "upload_file", end.Add(-time.Microsecond)}, // last instant: counted
		{1, "logout", end},                             // end: not counted
		{3, "viewed", start.Add(2 * time.Hour)},
		{2, "viewed", start.Add(time.Minute)},
		{2, "viewed", start.Add(time.Minute)},
		{2, "deleted", start.Add(3 * time.Hour)},
		{4, "login", end.Add(time.Hour)},          // user 4: outside only
		{4, "login", start.Add(-time.Hour)},       // user 4: outside only
		{5, "login", end.Add(-2 * time.Hour * 3)}, // user 5: before the window
	}
	var es []domain.Event
	for i, e := range evs {
		// occurred_at inside the window for every event: counting is on recorded_at.
		es = append(es, newEvent(t, e.user, e.action, e.recorded, start.Add(time.Duration(i)*time.Second), ""))
	}
	mustCreateMany(t, s, es)
	// A status change does not move an event out of its window.
	if _, err := s.SetStatus(ctx, es[2].ID, domain.StatusPending, domain.StatusInProgress, end.Add(time.Hour), "x"); err != nil {
		t.Fatalf("SetStatus: %v", err)
	}

	got, err := s.CountWindow(ctx, start, end)
	if err != nil {
		t.Fatalf("CountWindow: %v", err)
	}
	want := []domain.UserCount{
		{UserID: 1, Total: 3, ByAction: map[domain.Action]int64{"login": 2, "upload_file": 1}},
		{UserID: 2, Total: 3, ByAction: map[domain.Action]int64{"viewed": 2, "deleted": 1}},
		{UserID: 3, Total: 1, ByAction: map[domain.Action]int64{"viewed": 1}},
	}
	checkCounts(t, "CountWindow", got, want)

	got, err = s.CountWindow(ctx, end.Add(24*time.Hour), end.Add(28*time.Hour))
	if err != nil {
		t.Fatalf("CountWindow of an empty window: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("CountWindow of an empty window = %+v, want none", got)
	}
	// A window of one microsecond holds exactly the events at its start.
	got, err = s.CountWindow(ctx, start.Add(time.Minute), start.Add(time.Minute+time.Microsecond))
	if err != nil {
		t.Fatalf("CountWindow: %v", err)
	}
	checkCounts(t, "CountWindow of 1µs", got, []domain.UserCount{{UserID: 2, Total: 2, ByAction: map[domain.Action]int64{"viewed": 2}}})
}

func checkCounts(t *testing.T, what string, got, want []domain.UserCount) {
	t.Helper()
	format := func(cs []domain.UserCount) string {
		var b strings.Builder
		for _, c := range cs {
			keys := make([]string, 0, len(c.ByAction))
			for a := range c.ByAction {
				keys = append(keys, string(a))
			}
			slices.Sort(keys)
			fmt.Fprintf(&b, "{user %d total %d", c.UserID, c.Total)
			for _, k := range keys {
				fmt.Fprintf(&b, " %s:%d", k, c.ByAction[domain.Action(k)])
			}
			b.WriteString("} ")
		}
		return b.String()
	}
	if g, w := format(got), format(want); g != w {
		t.Errorf("%s =\n%s\nwant\n%s", what, g, w)
	}
}

func testTokens(t *testing.T, s ports.Store) {
	ctx := t.Context()
	hash := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	// Ids sort in the reverse of creation order, so a store that lists by
	// id instead of creation time fails.
	tokens := []domain.Token{
		{ID: "ffff000000000001", Name: "bootstrap-admin", UserID: 0, Scopes: []domain.Scope{domain.ScopeAdmin},
			Hash: hash(1), CreatedAt: at(0)},
		{ID: "8888000000000002", Name: "ci", UserID: 42, Scopes: []domain.Scope{domain.ScopeRead, domain.ScopeWrite},
			Hash: hash(2), CreatedAt: at(time.Minute + time.Microsecond), ExpiresAt: at(720*time.Hour + 5*time.Microsecond)},
		{ID: "0000000000000003", Name: "", UserID: 7, Scopes: []domain.Scope{domain.ScopeRead},
			Hash: hash(3), CreatedAt: at(2 * time.Minute), RevokedAt: at(3 * time.Minute)},
	}
	if ts, err := s.ListTokens(ctx); err != nil || len(ts) != 0 {
		t.Fatalf("ListTokens on an empty store = %v, %v; want none", ts, err)
	}
	for _, tok := range tokens {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken(%s): %v", tok.ID, err)
		}
	}
	diffToken := func(got, want domain.Token) string {
		var d []string
		if got.ID != want.ID || got.Name != want.Name || got.UserID != want.UserID {
			d = append(d, fmt.Sprintf("id/name/user %q/%q/%d, want %q/%q/%d", got.ID, got.Name, got.UserID, want.ID, want.Name, want.UserID))
		}
		if !slices.Equal(got.Scopes, want.Scopes) {
			d = append(d, fmt.Sprintf("scopes %v, want %v", got.Scopes, want.Scopes))
		}
		if !bytes.Equal(got.Hash, want.Hash) {
			d = append(d, fmt.Sprintf("hash %x, want %x", got.Hash, want.Hash))
		}
		for _, tf := range []struct {
			name      string
			got, want time.Time
		}{{"created_at", got.CreatedAt, want.CreatedAt}, {"expires_at", got.ExpiresAt, want.ExpiresAt}, {"revoked_at", got.RevokedAt, want.RevokedAt}} {
			if s := diffTime(tf.got, tf.want); s != "" {
				d = append(d, tf.name+" "+s)
			}
			if tf.want.IsZero() && !tf.got.IsZero() {
				d = append(d, tf.name+" is set, want zero")
			}
		}
		return strings.Join(d, "; ")
	}
	checkAll := func(what string, want []domain.Token) {
		t.Helper()
		got, err := s.ListTokens(ctx)
		if err != nil {
			t.Fatalf("ListTokens: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: ListTokens = %d tokens, want %d", what, len(got), len(want))
		}
		for i := range want {
			if d := diffToken(got[i], want[i]); d != "" {
				t.Errorf("%s: ListTokens[%d]: %s", what, i, d)
			}
		}
	}
	checkAll("after create", tokens)
	for _, tok := range tokens {
		got, err := s.TokenByHash(ctx, tok.Hash)
		if err != nil {
			t.Fatalf("TokenByHash(%x): %v", tok.Hash, err)
		}
		if d := diffToken(got, tok); d != "" {
			t.Errorf("TokenByHash(%s): %s", tok.ID, d)
		}
	}
	if _, err := s.TokenByHash(ctx, hash(9)); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("TokenByHash(unknown): err = %v, want ErrNotFound", err)
	}
	if _, err := s.TokenByHash(ctx, hash(1)[:31]); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("TokenByHash(prefix of a hash): err = %v, want ErrNotFound", err)
	}

	if err := s.RevokeToken(ctx, "no-such-token", at(time.Hour)); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("RevokeToken(unknown): err = %v, want ErrNotFound", err)
	}
	first := at(time.Hour + 3*time.Microsecond)
	if err := s.RevokeToken(ctx, tokens[1].ID, first); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if err := s.RevokeToken(ctx, tokens[1].ID, at(2*time.Hour)); err != nil {
		t.Fatalf("RevokeToken a second time: %v", err)
	}
	// Revoking an already revoked token keeps its time too.
	if err := s.RevokeToken(ctx, tokens[2].ID, at(2*time.Hour)); err != nil {
		t.Fatalf("RevokeToken of a revoked token: %v", err)
	}
	want := slices.Clone(tokens)
	want[1].RevokedAt = first
	got, err := s.TokenByHash(ctx, tokens[1].Hash)
	if err != nil {
		t.Fatalf("TokenByHash: %v", err)
	}
	if d := diffToken(got, want[1]); d != "" {
		t.Errorf("TokenByHash after revoking twice: %s", d)
	}
	if got.Active(at(time.Hour + 4*time.Microsecond)) {
		t.Error("revoked token is still active")
	}
	checkAll("after revoking", want)
}

func testPingMigrate(t *testing.T, s ports.Store) {
	ctx := t.Context()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	e := mustCreate(t, s, newEvent(t, 1, "login", at(0), at(0), `{"keep":1}`), "x")
	if err := s.CreateToken(ctx, domain.Token{ID: "t1", UserID: 1, Scopes: []domain.Scope{domain.ScopeRead}, Hash: []byte("h"), CreatedAt: at(0)}); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	for i := range 2 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate again (#%d): %v", i+1, err)
		}
	}
	got, err := s.Get(ctx, e.ID)
	if err != nil {
		t.Fatalf("Get after Migrate: %v", err)
	}
	checkEvent(t, "Get after Migrate", got, e)
	if ts, err := s.ListTokens(ctx); err != nil || len(ts) != 1 {
		t.Errorf("ListTokens after Migrate = %d tokens, %v; want 1", len(ts), err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after Migrate: %v", err)
	}
}

func testPingAfterClose(t *testing.T, s ports.Store) {
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("Ping after Close: err = %v, want ErrUnavailable", err)
	}
}

// countFixture stores events in and around the window [start, end) and
// returns the window and the counts it must hold.
func countFixture(t *testing.T, s ports.Store) (domain.Window, []domain.UserCount) {
	t.Helper()
	w := domain.Window{Start: at(4 * time.Hour).Truncate(time.Hour), End: at(8 * time.Hour).Truncate(time.Hour)}
	type ev struct {
		user     int64
		action   string
		recorded time.Time
	}
	evs := []ev{
		{1, "login", w.Start.Add(-time.Microsecond)}, // before: not counted
		{1, "login", w.Start},                        // exactly at the start: counted
		{1, "login", w.Start.Add(time.Hour)},
		{1, "upload_file", w.End.Add(-time.Microsecond)}, // last instant: counted
		{1, "logout", w.End},                             // exactly at the end: next window
		{2, "viewed", w.Start.Add(time.Minute)},
		{2, "viewed", w.Start.Add(time.Minute)},
		{2, "deleted", w.Start.Add(3 * time.Hour)},
		{3, "viewed", w.Start.Add(2 * time.Hour)},
		{4, "login", w.End.Add(time.Hour)},    // user 4: outside only
		{4, "login", w.Start.Add(-time.Hour)}, // user 4: outside only
		{1 << 40, "created", w.Start.Add(30 * time.Minute)},
	}
	var es []domain.Event
	for i, e := range evs {
		// occurred_at inside the window for every event: counting is on recorded_at.
		es = append(es, newEvent(t, e.user, e.action, e.recorded, w.Start.Add(time.Duration(i)*time.Second), ""))
	}
	mustCreateMany(t, s, es)
	return w, []domain.UserCount{
		{UserID: 1, Total: 3, ByAction: map[domain.Action]int64{"login": 2, "upload_file": 1}},
		{UserID: 2, Total: 3, ByAction: map[domain.Action]int64{"viewed": 2, "deleted": 1}},
		{UserID: 3, Total: 1, ByAction: map[domain.Action]int64{"viewed": 1}},
		{UserID: 1 << 40, Total: 1, ByAction: map[domain.Action]int64{"created": 1}},
	}
}

// allCounts lists every computed count of window start w (every window
// when w is zero), oldest window first, users ascending.
func allCounts(t *testing.T, s ports.Store, w time.Time) []domain.WindowCount {
	t.Helper()
	f := domain.CountFilter{Order: domain.Asc, Limit: domain.MaxLimit}
	if !w.IsZero() {
		f.From, f.To = w, w.Add(time.Microsecond)
	}
	page, err := s.ListCounts(t.Context(), f)
	if err != nil {
		t.Fatalf("ListCounts: %v", err)
	}
	if page.Next != nil {
		t.Fatalf("ListCounts: more than %d counts", domain.MaxLimit)
	}
	return page.Counts
}

// userCounts drops the windows of counts, checking they are all w.
func userCounts(t *testing.T, w domain.Window, counts []domain.WindowCount) []domain.UserCount {
	t.Helper()
	out := make([]domain.UserCount, len(counts))
	for i, c := range counts {
		if !c.Start.Equal(w.Start) || !c.End.Equal(w.End) {
			t.Errorf("count of user %d is for [%s, %s), want %s", c.UserID, domain.FormatTime(c.Start), domain.FormatTime(c.End), w)
		}
		if c.Start.Location() != time.UTC || c.End.Location() != time.UTC {
			t.Errorf("window times not in UTC: %v, %v", c.Start, c.End)
		}
		out[i] = c.UserCount
	}
	return out
}

func testComputeWindow(t *testing.T, s ports.Store) {
	ctx := t.Context()
	w, want := countFixture(t, s)
	users, err := s.ComputeWindow(ctx, w, at(9*time.Hour))
	if err != nil {
		t.Fatalf("ComputeWindow: %v", err)
	}
	if users != len(want) {
		t.Errorf("ComputeWindow = %d users, want %d", users, len(want))
	}
	checkCounts(t, "counts of the window", userCounts(t, w, allCounts(t, s, w.Start)), want)
	// CountWindow (reading the events) agrees with what was stored.
	live, err := s.CountWindow(ctx, w.Start, w.End)
	if err != nil {
		t.Fatalf("CountWindow: %v", err)
	}
	checkCounts(t, "CountWindow", live, want)

	// The next window holds the event exactly at the end, once.
	next := domain.Window{Start: w.End, End: w.End.Add(4 * time.Hour)}
	if _, err := s.ComputeWindow(ctx, next, at(13*time.Hour)); err != nil {
		t.Fatalf("ComputeWindow(next): %v", err)
	}
	checkCounts(t, "counts of the next window", userCounts(t, next, allCounts(t, s, next.Start)), []domain.UserCount{
		{UserID: 1, Total: 1, ByAction: map[domain.Action]int64{"logout": 1}},
		{UserID: 4, Total: 1, ByAction: map[domain.Action]int64{"login": 1}},
	})
	// A window without events stores no rows.
	empty := domain.Window{Start: at(100 * time.Hour), End: at(104 * time.Hour)}
	if users, err := s.ComputeWindow(ctx, empty, at(105*time.Hour)); err != nil || users != 0 {
		t.Fatalf("ComputeWindow(empty) = %d, %v; want 0 users", users, err)
	}
	if got := allCounts(t, s, empty.Start); len(got) != 0 {
		t.Errorf("an empty window has counts: %+v", got)
	}
	// An empty or inverted window is an error and stores nothing.
	if _, err := s.ComputeWindow(ctx, domain.Window{Start: w.End, End: w.Start}, at(0)); err == nil {
		t.Error("ComputeWindow of an inverted window: no error")
	}
}

func testComputeIdempotent(t *testing.T, s ports.Store) {
	ctx := t.Context()
	w, want := countFixture(t, s)
	for i := range 3 {
		if _, err := s.ComputeWindow(ctx, w, at(9*time.Hour+time.Duration(i)*time.Minute)); err != nil {
			t.Fatalf("ComputeWindow #%d: %v", i+1, err)
		}
		checkCounts(t, fmt.Sprintf("counts after run #%d", i+1), userCounts(t, w, allCounts(t, s, w.Start)), want)
	}
	// A late change (here: an event stored into the closed window) is
	// picked up by a recompute, which replaces the rows rather than adding.
	mustCreate(t, s, newEvent(t, 3, "deleted", w.Start.Add(time.Second), w.Start, ""), "late")
	if _, err := s.ComputeWindow(ctx, w, at(10*time.Hour)); err != nil {
		t.Fatalf("ComputeWindow: %v", err)
	}
	want[2] = domain.UserCount{UserID: 3, Total: 2, ByAction: map[domain.Action]int64{"viewed": 1, "deleted": 1}}
	checkCounts(t, "counts after a recompute", userCounts(t, w, allCounts(t, s, w.Start)), want)
	if got := allCounts(t, s, time.Time{}); len(got) != len(want) {
		t.Errorf("%d counts stored in all, want %d", len(got), len(want))
	}
}

func testComputeConcurrent(t *testing.T, s ports.Store) {
	ctx := t.Context()
	w, want := countFixture(t, s)
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			users, err := s.ComputeWindow(ctx, w, at(9*time.Hour+time.Duration(i)*time.Second))
			if err == nil && users != len(want) {
				err = fmt.Errorf("%d users, want %d", users, len(want))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent ComputeWindow: %v", err)
		}
	}
	checkCounts(t, "counts after concurrent runs", userCounts(t, w, allCounts(t, s, w.Start)), want)
	if wm, err := s.Watermark(ctx); err != nil || wm != w {
		t.Errorf("Watermark = %v, %v; want %s", wm, err, w)
	}
}

func testCountWatermark(t *testing.T, s ports.Store) {
	ctx := t.Context()
	check := func(what string, want domain.Window) {
		t.Helper()
		got, err := s.Watermark(ctx)
		if err != nil {
			t.Fatalf("Watermark %s: %v", what, err)
		}
		if !got.Start.Equal(want.Start) || !got.End.Equal(want.End) {
			t.Fatalf("Watermark %s = %s, want %s", what, got, want)
		}
		if !got.End.IsZero() && (got.Start.Location() != time.UTC || got.End.Location() != time.UTC) {
			t.Errorf("Watermark %s not in UTC: %v", what, got)
		}
	}
	check("of a fresh store", domain.Window{})
	h := func(n int) time.Time { return at(0).Truncate(time.Hour).Add(time.Duration(n) * time.Hour) }
	w1 := domain.Window{Start: h(0), End: h(4)}
	w2 := domain.Window{Start: h(4), End: h(8)}
	if _, err := s.ComputeWindow(ctx, w1, h(9)); err != nil {
		t.Fatal(err)
	}
	check("after the first window", w1)
	if _, err := s.ComputeWindow(ctx, w2, h(9)); err != nil {
		t.Fatal(err)
	}
	check("after the second window", w2)
	// Recomputing an older window never moves the watermark back.
	if _, err := s.ComputeWindow(ctx, w1, h(10)); err != nil {
		t.Fatal(err)
	}
	check("after recomputing the first window", w2)
	// An off-tick window (the schedule changed) ending later moves it on.
	w3 := domain.Window{Start: h(8), End: h(8).Add(90 * time.Minute)}
	if _, err := s.ComputeWindow(ctx, w3, h(11)); err != nil {
		t.Fatal(err)
	}
	check("after an off-tick window", w3)
	// A window ending at the same time as the watermark leaves it be.
	if _, err := s.ComputeWindow(ctx, domain.Window{Start: h(9), End: w3.End}, h(12)); err != nil {
		t.Fatal(err)
	}
	check("after a window with the same end", w3)
}

func testListCounts(t *testing.T, s ports.Store) {
	ctx := t.Context()
	h := func(n int) time.Time { return at(0).Truncate(time.Hour).Add(time.Duration(n) * time.Hour) }
	// Windows 0..3 of 4 hours; user u has u events in window k when u+k is
	// even, none otherwise (so some (window, user) pairs are absent).
	var es []domain.Event
	actions := []string{"login", "viewed", "deleted"}
	for k := range 4 {
		for u := int64(1); u <= 5; u++ {
			if (u+int64(k))%2 != 0 {
				continue
			}
			for i := range u {
				es = append(es, newEvent(t, u, actions[i%3], h(4*k).Add(time.Duration(i)*time.Minute), h(0), ""))
			}
		}
	}
	mustCreateMany(t, s, es)
	var windows []domain.Window
	for k := range 4 {
		w := domain.Window{Start: h(4 * k), End: h(4*k + 4)}
		windows = append(windows, w)
		if _, err := s.ComputeWindow(ctx, w, h(20)); err != nil {
			t.Fatal(err)
		}
	}
	// What every listing is checked against, built by hand.
	var all []domain.WindowCount
	for k, w := range windows {
		for u := int64(1); u <= 5; u++ {
			if (u+int64(k))%2 != 0 {
				continue
			}
			c := domain.WindowCount{Start: w.Start, End: w.End, UserCount: domain.UserCount{UserID: u, Total: u, ByAction: map[domain.Action]int64{}}}
			for i := range u {
				c.ByAction[domain.Action(actions[i%3])]++
			}
			all = append(all, c)
		}
	}
	render := func(cs []domain.WindowCount) string {
		var b strings.Builder
		for _, c := range cs {
			fmt.Fprintf(&b, "%s/%d:%d", domain.FormatTime(c.Start), c.UserID, c.Total)
			for _, a := range actions {
				if n := c.ByAction[domain.Action(a)]; n > 0 {
					fmt.Fprintf(&b, ",%s=%d", a, n)
				}
			}
			b.WriteString(" ")
		}
		return b.String()
	}
	for _, tc := range []struct {
		name  string
		f     domain.CountFilter
		match func(domain.WindowCount) bool
	}{
		{"every count", domain.CountFilter{}, func(domain.WindowCount) bool { return true }},
		{"one user", domain.CountFilter{UserID: 2}, func(c domain.WindowCount) bool { return c.UserID == 2 }},
		{"from (inclusive)", domain.CountFilter{From: h(4)}, func(c domain.WindowCount) bool { return !c.Start.Before(h(4)) }},
		{"to (exclusive)", domain.CountFilter{To: h(8)}, func(c domain.WindowCount) bool { return c.Start.Before(h(8)) }},
		{"from inside a window", domain.CountFilter{From: h(5), To: h(12)}, func(c domain.WindowCount) bool {
			return !c.Start.Before(h(5)) && c.Start.Before(h(12))
		}},
		{"user and range", domain.CountFilter{UserID: 3, From: h(0), To: h(12)}, func(c domain.WindowCount) bool {
			return c.UserID == 3 && c.Start.Before(h(12))
		}},
		{"a user without counts", domain.CountFilter{UserID: 99}, func(domain.WindowCount) bool { return false }},
	} {
		for _, order := range []domain.Order{domain.Asc, domain.Desc} {
			for _, limit := range []int{1, 2, 3, 1000} {
				t.Run(fmt.Sprintf("%s/%s/limit%d", tc.name, order, limit), func(t *testing.T) {
					var want []domain.WindowCount
					for _, c := range all {
						if tc.match(c) {
							want = append(want, c)
						}
					}
					if order == domain.Desc {
						slices.Reverse(want)
					}
					f := tc.f
					f.Order, f.Limit = order, limit
					var got []domain.WindowCount
					for pages := 0; ; pages++ {
						if pages > len(all)+1 {
							t.Fatal("paging does not end")
						}
						page, err := s.ListCounts(ctx, f)
						if err != nil {
							t.Fatalf("ListCounts: %v", err)
						}
						if page.Counts == nil {
							t.Fatal("ListCounts: nil Counts, want an empty slice")
						}
						if len(page.Counts) > limit {
							t.Fatalf("page of %d counts, limit %d", len(page.Counts), limit)
						}
						got = append(got, page.Counts...)
						if page.Next == nil {
							break
						}
						if len(page.Counts) != limit {
							t.Fatalf("a page of %d < limit %d has a next cursor", len(page.Counts), limit)
						}
						// The cursor survives its encoding.
						c, err := domain.DecodeCountCursor(page.Next.Encode())
						if err != nil {
							t.Fatal(err)
						}
						f.After = &c
					}
					if g, w := render(got), render(want); g != w {
						t.Errorf("ListCounts =\n%s\nwant\n%s", g, w)
					}
				})
			}
		}
	}
}
