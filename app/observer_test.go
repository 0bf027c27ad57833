package app_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/testenv"
)

// heard is an app.Observer that writes down what it hears, one line each.
type heard struct {
	mu    sync.Mutex
	lines []string
}

func (h *heard) add(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lines = append(h.lines, fmt.Sprintf(format, args...))
}

func (h *heard) Recorded(_ context.Context, a domain.Action) { h.add("recorded %s", a) }
func (h *heard) Transitioned(_ context.Context, from, to domain.Status, r app.TransitionResult) {
	h.add("transition %s>%s %s", from, to, r)
}
func (h *heard) Computed(_ context.Context, w domain.Window, users int, took time.Duration, err error) {
	if took < 0 {
		h.add("negative duration %v", took)
	}
	h.add("computed %gh-%gh users=%d err=%v", w.Start.Sub(day0).Hours(), w.End.Sub(day0).Hours(), users, err != nil)
}

// take returns the lines heard since the last take, sorted (concurrent
// callers hear in any order).
func (h *heard) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := slices.Sorted(slices.Values(h.lines))
	h.lines = nil
	return out
}

func wantHeard(t *testing.T, h *heard, want ...string) {
	t.Helper()
	if got := h.take(); !slices.Equal(got, want) {
		t.Errorf("observer heard %q\nwant %q", got, want)
	}
}

// The observer hears every event newly stored, once, and nothing for
// retries, rejected input or failed batch items.
func TestObserverHearsRecords(t *testing.T) {
	h := &heard{}
	st := memory.New()
	t.Cleanup(func() { _ = st.Close() })
	clk := testenv.NewClock(start)
	events := app.NewEvents(st, clk, domain.DefaultLimits(), app.WithObserver(h))
	ctx := context.Background()

	if _, _, err := events.Record(ctx, alice, keyed(domain.NewEvent{Action: "LOGIN"}, "k1")); err != nil {
		t.Fatal(err)
	}
	wantHeard(t, h, "recorded login")
	if _, created, err := events.Record(ctx, alice, keyed(domain.NewEvent{Action: "login"}, "k1")); err != nil || created {
		t.Fatalf("retry: created %v, %v", created, err)
	}
	if _, _, err := events.Record(ctx, alice, domain.NewEvent{Action: "no such action"}); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("invalid action: %v", err)
	}
	wantHeard(t, h)

	items, err := events.RecordBatch(ctx, alice, []domain.NewEvent{
		{Action: "upload_file"}, {Action: "!!"}, {Action: "deleted"}, {Action: "deleted"},
	})
	if err != nil || items[1].Err == nil {
		t.Fatalf("batch: %+v, %v", items, err)
	}
	wantHeard(t, h, "recorded deleted", "recorded deleted", "recorded upload_file")
}

// Every transition attempt on an existing event is heard with how it
// ended: moved, forbidden by the workflow, or lost to a concurrent one.
func TestObserverHearsTransitions(t *testing.T) {
	h := &heard{}
	g := &gatedStore{Store: memory.New()}
	t.Cleanup(func() { _ = g.Close() })
	clk := testenv.NewClock(start)
	events := app.NewEvents(g, clk, domain.DefaultLimits(), app.WithObserver(h))
	ctx := context.Background()
	e, _, err := events.Record(ctx, alice, domain.NewEvent{Action: "login"})
	if err != nil {
		t.Fatal(err)
	}
	h.take()

	g.arrived.Add(racers)
	errs := racedTransition(t, events, e.ID.String())
	want := []string{"transition PENDING>IN_PROGRESS ok"}
	for range racers - 1 {
		want = append(want, "transition PENDING>IN_PROGRESS conflict")
	}
	slices.Sort(want)
	wantHeard(t, h, want...)
	checkOneWinner(t, errs, racers-1)

	g.arrived.Add(1)
	if _, err := events.Transition(ctx, alice, e.ID.String(), "PENDING"); !errors.Is(err, domain.ErrInvalidTransition) {
		t.Fatalf("going back: %v", err)
	}
	wantHeard(t, h, "transition IN_PROGRESS>PENDING invalid")

	// Not an event, not a status: nothing to label, nothing heard.
	g.arrived.Add(1)
	if _, err := events.Transition(ctx, alice, domain.NewID(start).String(), "DONE"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("missing event: %v", err)
	}
	if _, err := events.Transition(ctx, alice, e.ID.String(), "FINISHED"); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("bad status: %v", err)
	}
	wantHeard(t, h)
}

// Each window computed is heard with its result, whether it succeeded or
// failed, and Lag says how long the oldest uncounted window has been due.
func TestObserverHearsComputationsAndLag(t *testing.T) {
	h := &heard{}
	fx := newCountsFixture(t, app.CountsConfig{Observer: h, Settle: time.Minute})
	ctx := context.Background()
	fx.recordAt(t, 1, "login", hr(1))
	fx.recordAt(t, 2, "login", hr(2))

	fx.clock.Set(hr(4.5))
	lag, err := fx.counts.Lag(ctx, fx.clock.Now())
	if err != nil || lag != 29*time.Minute {
		t.Fatalf("lag before the first run = %v, %v; want 29m (due at 4h01)", lag, err)
	}
	if _, _, err := fx.counts.RunDue(ctx, fx.clock.Now()); err != nil {
		t.Fatal(err)
	}
	wantHeard(t, h, "computed 0h-4h users=2 err=false")
	if lag, err := fx.counts.Lag(ctx, fx.clock.Now()); err != nil || lag != 0 {
		t.Fatalf("lag after the run = %v, %v; want 0", lag, err)
	}
	// Two windows later, nothing run: the older one has waited longest.
	if lag, err := fx.counts.Lag(ctx, hr(12.5)); err != nil || lag != 4*time.Hour+29*time.Minute {
		t.Fatalf("lag two windows behind = %v, %v; want 4h29m", lag, err)
	}

	failing := app.NewCounts(failingCounts{}, ports.SystemClock, app.CountsConfig{Schedule: fourHourly{}, Observer: h})
	if _, err := failing.Compute(ctx, domain.Window{Start: hr(0), End: hr(4)}); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("compute on a failing store: %v", err)
	}
	wantHeard(t, h, "computed 0h-4h users=0 err=true")
	if _, err := failing.Lag(ctx, hr(5)); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("lag on a failing store: %v", err)
	}
}
