package storagetest

import (
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

// keptDeliveries is how many delivery attempts a store keeps per
// subscription (ports.Webhooks.RecordDelivery).
const keptDeliveries = 1000

// RunWebhooks runs the contract suite of ports.Webhooks. open must return a
// fresh, empty, migrated store for each call and register its own cleanup
// with t.Cleanup; subtests do not run in parallel.
//
// Beyond the port's doc comments, the suite pins what a store decides:
// empty lists (a filter's, the secrets) come back nil; UpdateSubscription
// keeps CreatedAt and CreatedBy; DeleteSubscription, RecordDelivery and the
// compare-and-set writes of an unknown id return domain.ErrNotFound;
// RecordDelivery does not change the subscription's Version; Deliveries of
// an unknown id, or with a limit of 0, is empty and no error.
func RunWebhooks(t *testing.T, open func(t *testing.T) ports.Webhooks) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s ports.Webhooks)
	}{
		{"SubscriptionRoundTrip", testSubscriptionRoundTrip},
		{"CreateDuplicateID", testSubscriptionDuplicate},
		{"UpdateSubscriptionCompareAndSet", testUpdateSubscriptionCAS},
		{"SetDeliveryStateCompareAndSet", testSetDeliveryStateCAS},
		{"SetDeliveryStateConcurrent", testSetDeliveryStateConcurrent},
		{"DeleteSubscription", testDeleteSubscription},
		{"Deliveries", testDeliveries},
		{"DeliveryLogBounded", testDeliveryLogBounded},
	}
	runSubtests(t, open, tests)
}

// fullSubscription has every field set, times with microseconds.
func fullSubscription(id string, created time.Time) domain.Subscription {
	return domain.Subscription{
		ID:  id,
		URL: "https://hooks.example.com/activity?team=" + id,
		Filter: domain.SubscriptionFilter{
			Actions: []domain.Action{"upload_file", "login"},
			Users:   []int64{42, 7, 1 << 40},
			Kinds:   []domain.ChangeKind{domain.ChangeStatus, domain.ChangeRecorded},
		},
		// Newest first: a store that sorts them fails.
		Secrets: []domain.WebhookSecret{
			{Secret: "whsec_bmV3ZXN0IHNlY3JldCBvZiB0aGUgdHdv", CreatedAt: created.Add(time.Hour + time.Microsecond)},
			{Secret: "whsec_b2xkZXIgc2VjcmV0LCByb3RhdGVkIG91dA==", CreatedAt: created, ExpiresAt: created.Add(25*time.Hour + 7*time.Microsecond)},
		},
		CreatedAt: created,
		CreatedBy: "token:admin-1",
		State: domain.DeliveryState{
			Position:  1 << 33,
			Pending:   1<<33 + 17,
			Failures:  3,
			Paused:    true,
			LastError: "POST: 503 Service Unavailable",
			NextTry:   created.Add(90*time.Second + 11*time.Microsecond),
		},
	}
}

// diffSubscription compares every field; times must be the same instant in
// UTC, and a want of zero time must come back zero.
func diffSubscription(got, want domain.Subscription) string {
	var d []string
	if got.ID != want.ID || got.URL != want.URL || got.CreatedBy != want.CreatedBy || got.Version != want.Version {
		d = append(d, fmt.Sprintf("id/url/by/version %q/%q/%q/%d, want %q/%q/%q/%d",
			got.ID, got.URL, got.CreatedBy, got.Version, want.ID, want.URL, want.CreatedBy, want.Version))
	}
	if !slices.Equal(got.Filter.Actions, want.Filter.Actions) || !slices.Equal(got.Filter.Users, want.Filter.Users) ||
		!slices.Equal(got.Filter.Kinds, want.Filter.Kinds) {
		d = append(d, fmt.Sprintf("filter %+v, want %+v", got.Filter, want.Filter))
	}
	// Empty lists come back nil, whatever was given.
	for _, l := range []struct {
		name string
		got  bool
	}{{"actions", got.Filter.Actions != nil && len(got.Filter.Actions) == 0},
		{"users", got.Filter.Users != nil && len(got.Filter.Users) == 0},
		{"kinds", got.Filter.Kinds != nil && len(got.Filter.Kinds) == 0},
		{"secrets", got.Secrets != nil && len(got.Secrets) == 0}} {
		if l.got {
			d = append(d, l.name+" is an empty non-nil list, want nil")
		}
	}
	times := []struct {
		name      string
		got, want time.Time
	}{{"created_at", got.CreatedAt, want.CreatedAt}, {"state.next_try", got.State.NextTry, want.State.NextTry}}
	if len(got.Secrets) != len(want.Secrets) {
		d = append(d, fmt.Sprintf("%d secrets, want %d", len(got.Secrets), len(want.Secrets)))
	} else {
		for i := range want.Secrets {
			if got.Secrets[i].Secret != want.Secrets[i].Secret {
				d = append(d, fmt.Sprintf("secrets[%d] %q, want %q", i, got.Secrets[i].Secret, want.Secrets[i].Secret))
			}
			times = append(times,
				struct {
					name      string
					got, want time.Time
				}{fmt.Sprintf("secrets[%d].created_at", i), got.Secrets[i].CreatedAt, want.Secrets[i].CreatedAt},
				struct {
					name      string
					got, want time.Time
				}{fmt.Sprintf("secrets[%d].expires_at", i), got.Secrets[i].ExpiresAt, want.Secrets[i].ExpiresAt})
		}
	}
	for _, tf := range times {
		if s := diffTime(tf.got, tf.want); s != "" {
			d = append(d, tf.name+" "+s)
		}
	}
	gs, ws := got.State, want.State
	gs.NextTry, ws.NextTry = time.Time{}, time.Time{}
	if gs != ws {
		d = append(d, fmt.Sprintf("state %+v, want %+v", got.State, want.State))
	}
	return strings.Join(d, "; ")
}

func checkSubscription(t *testing.T, s ports.Webhooks, what string, want domain.Subscription) {
	t.Helper()
	got, err := s.Subscription(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("%s: Subscription(%s): %v", what, want.ID, err)
	}
	if d := diffSubscription(got, want); d != "" {
		t.Errorf("%s: Subscription(%s): %s", what, want.ID, d)
	}
}

func mustCreateSubscription(t *testing.T, s ports.Webhooks, sub domain.Subscription) domain.Subscription {
	t.Helper()
	if err := s.CreateSubscription(t.Context(), sub); err != nil {
		t.Fatalf("CreateSubscription(%s): %v", sub.ID, err)
	}
	sub.Version = 1
	return sub
}

func testSubscriptionRoundTrip(t *testing.T, s ports.Webhooks) {
	ctx := t.Context()
	if subs, err := s.Subscriptions(ctx); err != nil || len(subs) != 0 {
		t.Fatalf("Subscriptions on an empty store = %+v, %v; want none", subs, err)
	}
	// Ids sort in the reverse of creation order, so a store that lists by
	// id instead of creation time fails.
	tests := []struct {
		name string
		sub  domain.Subscription
	}{
		{"every field", fullSubscription("wh_zzzz", at(0))},
		{"empty lists given empty", domain.Subscription{
			ID: "wh_mmmm", URL: "https://example.org/hook", CreatedAt: at(time.Minute + 3*time.Microsecond), CreatedBy: "cli",
			Filter:  domain.SubscriptionFilter{Actions: []domain.Action{}, Users: []int64{}, Kinds: []domain.ChangeKind{}},
			Secrets: []domain.WebhookSecret{},
		}},
		{"empty lists given nil, zero state", domain.Subscription{
			ID: "wh_aaaa", URL: "http://10.0.0.1:8080/h", CreatedAt: at(2 * time.Minute), CreatedBy: "",
			Secrets: []domain.WebhookSecret{{Secret: "whsec_b25seSBvbmU=", CreatedAt: at(2 * time.Minute)}},
		}},
	}
	var want []domain.Subscription
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			given := tc.sub
			given.Version = 7 // ignored: a new subscription is Version 1
			if err := s.CreateSubscription(ctx, given); err != nil {
				t.Fatalf("CreateSubscription: %v", err)
			}
			w := tc.sub
			w.Version = 1
			w.Filter = domain.SubscriptionFilter{Actions: nilIfEmpty(w.Filter.Actions), Users: nilIfEmpty(w.Filter.Users), Kinds: nilIfEmpty(w.Filter.Kinds)}
			w.Secrets = nilIfEmpty(w.Secrets)
			want = append(want, w)
			checkSubscription(t, s, "after create", w)
		})
	}
	got, err := s.Subscriptions(ctx)
	if err != nil {
		t.Fatalf("Subscriptions: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("Subscriptions = %d, want %d", len(got), len(want))
	}
	for i := range want {
		if d := diffSubscription(got[i], want[i]); d != "" {
			t.Errorf("Subscriptions[%d] (want oldest first): %s", i, d)
		}
	}
	if _, err := s.Subscription(ctx, "wh_none"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Subscription(unknown): err = %v, want ErrNotFound", err)
	}
	if t.Failed() {
		return // got[0] may not have the lists changed below
	}
	// What a caller does with a returned subscription does not reach the
	// store.
	got[0].Filter.Actions[0], got[0].Secrets[0].Secret = "changed", "whsec_changed"
	checkSubscription(t, s, "after changing a returned copy", want[0])
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func testSubscriptionDuplicate(t *testing.T, s ports.Webhooks) {
	ctx := t.Context()
	first := mustCreateSubscription(t, s, fullSubscription("wh_dup", at(0)))
	again := fullSubscription("wh_dup", at(time.Hour))
	again.URL = "https://attacker.example/steal"
	err := s.CreateSubscription(ctx, again)
	if err == nil {
		t.Fatal("CreateSubscription of an existing id succeeded")
	}
	if errors.Is(err, domain.ErrNotFound) {
		t.Errorf("CreateSubscription of an existing id: err = %v matches ErrNotFound", err)
	}
	checkSubscription(t, s, "after a refused duplicate", first)
	if subs, err := s.Subscriptions(ctx); err != nil || len(subs) != 1 {
		t.Errorf("Subscriptions after a refused duplicate = %d, %v; want 1", len(subs), err)
	}
}

func testUpdateSubscriptionCAS(t *testing.T, s ports.Webhooks) {
	ctx := t.Context()
	stored := mustCreateSubscription(t, s, fullSubscription("wh_upd", at(0)))
	other := mustCreateSubscription(t, s, fullSubscription("wh_other", at(time.Second)))

	// changed replaces every field it may: CreatedAt and CreatedBy are
	// the creation's and are kept.
	changed := func(v int64, url string) domain.Subscription {
		c := domain.Subscription{
			ID: stored.ID, URL: url, Version: v,
			Filter:    domain.SubscriptionFilter{Users: []int64{9}},
			Secrets:   []domain.WebhookSecret{{Secret: "whsec_cm90YXRlZA==", CreatedAt: at(3 * time.Hour)}},
			CreatedAt: at(99 * time.Hour), CreatedBy: "someone else",
			State: domain.DeliveryState{Position: 5, Failures: 1, LastError: "timeout", NextTry: at(4 * time.Hour)},
		}
		return c
	}
	tests := []struct {
		name    string
		sub     domain.Subscription
		wantErr error // nil: the write wins
	}{
		{"current version", changed(1, "https://a.example/1"), nil},
		{"stale version", changed(1, "https://a.example/stale"), domain.ErrConflict},
		{"version from the future", changed(9, "https://a.example/future"), domain.ErrConflict},
		{"next version", changed(2, "https://a.example/2"), nil},
		{"unknown id", func() domain.Subscription { c := changed(1, "https://x"); c.ID = "wh_none"; return c }(), domain.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.UpdateSubscription(ctx, tc.sub)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("UpdateSubscription(version %d) = %v, want %v", tc.sub.Version, err, tc.wantErr)
			}
			if tc.wantErr == domain.ErrConflict && errors.Is(err, domain.ErrNotFound) {
				t.Errorf("a conflict also matches ErrNotFound: %v", err)
			}
			if tc.wantErr == nil {
				stored = tc.sub
				stored.Version = tc.sub.Version + 1
				stored.CreatedAt, stored.CreatedBy = at(0), "token:admin-1"
			}
			checkSubscription(t, s, "after "+tc.name, stored)
		})
	}
	checkSubscription(t, s, "the other subscription", other)
}

func testSetDeliveryStateCAS(t *testing.T, s ports.Webhooks) {
	ctx := t.Context()
	stored := mustCreateSubscription(t, s, fullSubscription("wh_state", at(0)))
	other := mustCreateSubscription(t, s, fullSubscription("wh_other", at(time.Second)))
	state := func(pos int64) domain.DeliveryState {
		return domain.DeliveryState{Position: pos, Pending: pos + 3, Failures: int(pos % 5), LastError: fmt.Sprintf("err %d", pos),
			NextTry: at(time.Duration(pos) * time.Microsecond)}
	}
	tests := []struct {
		name    string
		id      string
		version int64
		st      domain.DeliveryState
		wantErr error
	}{
		{"current version", stored.ID, 1, state(10), nil},
		{"stale version", stored.ID, 1, state(11), domain.ErrConflict},
		{"next version", stored.ID, 2, state(12), nil},
		{"back to the zero state", stored.ID, 3, domain.DeliveryState{}, nil},
		{"version from the future", stored.ID, 8, state(13), domain.ErrConflict},
		{"unknown id", "wh_none", 1, state(14), domain.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.SetDeliveryState(ctx, tc.id, tc.version, tc.st)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("SetDeliveryState(version %d) = %v, want %v", tc.version, err, tc.wantErr)
			}
			if tc.wantErr == domain.ErrConflict && errors.Is(err, domain.ErrNotFound) {
				t.Errorf("a conflict also matches ErrNotFound: %v", err)
			}
			if tc.wantErr == nil {
				// State only: every other field as it was.
				stored.State, stored.Version = tc.st, tc.version+1
			}
			checkSubscription(t, s, "after "+tc.name, stored)
		})
	}
	checkSubscription(t, s, "the other subscription", other)
}

func testSetDeliveryStateConcurrent(t *testing.T, s ports.Webhooks) {
	ctx := t.Context()
	sub := mustCreateSubscription(t, s, fullSubscription("wh_race", at(0)))
	const n = 8
	var wins, conflicts atomic.Int32
	winner := make(chan int64, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		st := domain.DeliveryState{Position: int64(100 + i), LastError: fmt.Sprintf("worker %d", i)}
		wg.Go(func() {
			<-start
			err := s.SetDeliveryState(ctx, sub.ID, 1, st)
			switch {
			case err == nil:
				wins.Add(1)
				winner <- st.Position
			case errors.Is(err, domain.ErrConflict):
				conflicts.Add(1)
			default:
				t.Errorf("SetDeliveryState by worker %d: err = %v, want nil or ErrConflict", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if w, c := wins.Load(), conflicts.Load(); w != 1 || c != n-1 {
		t.Fatalf("%d concurrent SetDeliveryState(version 1): %d won, %d conflicted; want 1 and %d", n, w, c, n-1)
	}
	pos := <-winner
	sub.Version, sub.State = 2, domain.DeliveryState{Position: pos, LastError: fmt.Sprintf("worker %d", pos-100)}
	checkSubscription(t, s, "after the race", sub)
}

// delivery is attempt i of a delivery to sub, every field set.
func delivery(sub string, i int) domain.Delivery {
	d := domain.Delivery{
		Subscription: sub,
		MessageID:    fmt.Sprintf("msg_%s_%d", sub, i),
		First:        int64(i)*10 + 1, Last: int64(i)*10 + 9, Count: 7,
		Attempt:    i%3 + 1,
		At:         at(time.Duration(i)*time.Second + time.Duration(i)*time.Microsecond),
		Duration:   time.Duration(i)*time.Millisecond + 123456789*time.Nanosecond,
		StatusCode: 200,
	}
	if i%2 == 1 {
		d.StatusCode, d.Error = 0, fmt.Sprintf("dial tcp: attempt %d refused", i)
	}
	return d
}

func diffDelivery(got, want domain.Delivery) string {
	gotAt, wantAt := got.At, want.At
	got.At, want.At = time.Time{}, time.Time{}
	var d []string
	if got != want {
		d = append(d, fmt.Sprintf("%+v, want %+v", got, want))
	}
	if s := diffTime(gotAt, wantAt); s != "" {
		d = append(d, "at "+s)
	}
	return strings.Join(d, "; ")
}

// checkDeliveries asks for at most limit attempts of sub and wants want,
// newest first.
func checkDeliveries(t *testing.T, s ports.Webhooks, what, sub string, limit int, want []domain.Delivery) {
	t.Helper()
	got, err := s.Deliveries(t.Context(), sub, limit)
	if err != nil {
		t.Fatalf("%s: Deliveries(%s, %d): %v", what, sub, limit, err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: Deliveries(%s, %d) = %d attempts, want %d", what, sub, limit, len(got), len(want))
	}
	for i := range want {
		if d := diffDelivery(got[i], want[i]); d != "" {
			t.Errorf("%s: Deliveries(%s, %d)[%d]: %s", what, sub, limit, i, d)
		}
	}
}

func recordDeliveries(t *testing.T, s ports.Webhooks, sub string, from, to int) []domain.Delivery {
	t.Helper()
	var newest []domain.Delivery
	for i := from; i < to; i++ {
		d := delivery(sub, i)
		if err := s.RecordDelivery(t.Context(), d); err != nil {
			t.Fatalf("RecordDelivery(%s, %d): %v", sub, i, err)
		}
		newest = append(newest, d)
	}
	slices.Reverse(newest)
	return newest
}

func testDeliveries(t *testing.T, s ports.Webhooks) {
	ctx := t.Context()
	a := mustCreateSubscription(t, s, fullSubscription("wh_a", at(0)))
	b := mustCreateSubscription(t, s, fullSubscription("wh_b", at(time.Second)))
	checkDeliveries(t, s, "before any", a.ID, 10, nil)

	// Interleaved, and the times of a's attempts go backwards, so that a
	// store ordering by time or mixing subscriptions fails.
	var wantA, wantB []domain.Delivery
	for i := range 5 {
		da := delivery(a.ID, i)
		da.At = at(-time.Duration(i) * time.Minute)
		if err := s.RecordDelivery(ctx, da); err != nil {
			t.Fatalf("RecordDelivery(a, %d): %v", i, err)
		}
		wantA = append([]domain.Delivery{da}, wantA...)
		if i < 2 {
			wantB = append(recordDeliveries(t, s, b.ID, i, i+1), wantB...)
		}
	}
	tests := []struct {
		name  string
		sub   string
		limit int
		want  []domain.Delivery
	}{
		{"a, limit above the count", a.ID, 10, wantA},
		{"a, limit equal to the count", a.ID, 5, wantA},
		{"a, limit below the count", a.ID, 3, wantA[:3]},
		{"a, limit 1", a.ID, 1, wantA[:1]},
		{"a, limit 0", a.ID, 0, nil},
		{"b", b.ID, 10, wantB},
		{"unknown subscription", "wh_none", 10, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkDeliveries(t, s, tc.name, tc.sub, tc.limit, tc.want)
		})
	}
	if err := s.RecordDelivery(ctx, delivery("wh_none", 1)); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("RecordDelivery to an unknown subscription: err = %v, want ErrNotFound", err)
	}
	// The log is not the subscription: its Version is unchanged.
	checkSubscription(t, s, "after recording deliveries", a)
}

func testDeliveryLogBounded(t *testing.T, s ports.Webhooks) {
	a := mustCreateSubscription(t, s, fullSubscription("wh_busy", at(0)))
	b := mustCreateSubscription(t, s, fullSubscription("wh_quiet", at(time.Second)))
	wantB := recordDeliveries(t, s, b.ID, 0, 3)
	const extra = 5
	wantA := recordDeliveries(t, s, a.ID, 0, keptDeliveries+extra)
	// The oldest extra are gone; the latest keptDeliveries remain, in order.
	checkDeliveries(t, s, "after the log overflowed", a.ID, 2*keptDeliveries, wantA[:keptDeliveries])
	checkDeliveries(t, s, "the other subscription's log", b.ID, 10, wantB)
}

func testDeleteSubscription(t *testing.T, s ports.Webhooks) {
	ctx := t.Context()
	gone := mustCreateSubscription(t, s, fullSubscription("wh_gone", at(0)))
	kept := mustCreateSubscription(t, s, fullSubscription("wh_kept", at(time.Second)))
	recordDeliveries(t, s, gone.ID, 0, 4)
	wantKept := recordDeliveries(t, s, kept.ID, 0, 2)

	if err := s.DeleteSubscription(ctx, gone.ID); err != nil {
		t.Fatalf("DeleteSubscription: %v", err)
	}
	tests := []struct {
		name string
		op   func() error
	}{
		{"Subscription", func() error { _, err := s.Subscription(ctx, gone.ID); return err }},
		{"DeleteSubscription again", func() error { return s.DeleteSubscription(ctx, gone.ID) }},
		{"UpdateSubscription", func() error { return s.UpdateSubscription(ctx, gone) }},
		{"SetDeliveryState", func() error { return s.SetDeliveryState(ctx, gone.ID, 1, domain.DeliveryState{Position: 1}) }},
		{"RecordDelivery", func() error { return s.RecordDelivery(ctx, delivery(gone.ID, 9)) }},
	}
	for _, tc := range tests {
		if err := tc.op(); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("%s after delete: err = %v, want ErrNotFound", tc.name, err)
		}
	}
	checkDeliveries(t, s, "the deleted subscription's log", gone.ID, 10, nil)
	checkSubscription(t, s, "the other subscription", kept)
	checkDeliveries(t, s, "the other subscription's log", kept.ID, 10, wantKept)
	subs, err := s.Subscriptions(ctx)
	if err != nil || len(subs) != 1 || subs[0].ID != kept.ID {
		t.Errorf("Subscriptions after delete = %+v, %v; want only %s", subs, err, kept.ID)
	}
	// The id may be used again, with an empty log.
	again := mustCreateSubscription(t, s, fullSubscription(gone.ID, at(time.Hour)))
	checkSubscription(t, s, "created again", again)
	checkDeliveries(t, s, "created again", gone.ID, 10, nil)
}
