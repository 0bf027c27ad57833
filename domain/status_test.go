package domain_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/activityd/activityd/domain"
)

// Every pair of statuses, known and unknown: only PENDING → IN_PROGRESS and
// IN_PROGRESS → DONE are transitions.
func TestCanMoveToEveryPair(t *testing.T) {
	all := []domain.Status{
		domain.StatusPending, domain.StatusInProgress, domain.StatusDone,
		"", "pending", "CANCELLED", "IN-PROGRESS",
	}
	valid := map[[2]domain.Status]bool{
		{domain.StatusPending, domain.StatusInProgress}: true,
		{domain.StatusInProgress, domain.StatusDone}:    true,
	}
	pairs := 0
	for _, from := range all {
		for _, to := range all {
			pairs++
			t.Run(fmt.Sprintf("%q->%q", from, to), func(t *testing.T) {
				err := from.CanMoveTo(to)
				if valid[[2]domain.Status{from, to}] {
					if err != nil {
						t.Fatalf("%s -> %s: got %v, want nil", from, to, err)
					}
					return
				}
				if err == nil {
					t.Fatalf("%s -> %s: got nil, want an invalid transition", from, to)
				}
				if !errors.Is(err, domain.ErrInvalidTransition) {
					t.Errorf("errors.Is(%v, ErrInvalidTransition) = false", err)
				}
				if errors.Is(err, domain.ErrInvalid) || errors.Is(err, domain.ErrStatusConflict) {
					t.Errorf("%v matches an unrelated sentinel", err)
				}
				var te *domain.TransitionError
				if !errors.As(err, &te) {
					t.Fatalf("errors.As(%v, *TransitionError) = false", err)
				}
				if te.From != from || te.To != to {
					t.Errorf("TransitionError{From: %q, To: %q}, want {%q, %q}", te.From, te.To, from, to)
				}
			})
		}
	}
	if pairs != len(all)*len(all) {
		t.Fatalf("checked %d pairs", pairs)
	}
}

func TestTransitionErrorMessage(t *testing.T) {
	err := domain.StatusDone.CanMoveTo(domain.StatusPending)
	if got, want := err.Error(), "invalid status transition: DONE -> PENDING"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("patch: %w", err)
	if !errors.Is(wrapped, domain.ErrInvalidTransition) {
		t.Error("a wrapped TransitionError no longer matches ErrInvalidTransition")
	}
}

func TestStatusNext(t *testing.T) {
	tests := []struct {
		s    domain.Status
		next domain.Status
		ok   bool
	}{
		{domain.StatusPending, domain.StatusInProgress, true},
		{domain.StatusInProgress, domain.StatusDone, true},
		{domain.StatusDone, "", false},
		{"", "", false},
		{"BOGUS", "", false},
	}
	for _, tt := range tests {
		next, ok := tt.s.Next()
		if next != tt.next || ok != tt.ok {
			t.Errorf("%q.Next() = %q, %v; want %q, %v", tt.s, next, ok, tt.next, tt.ok)
		}
	}
	if len(domain.Statuses) != 3 || domain.Statuses[0] != domain.StatusPending || domain.Statuses[2] != domain.StatusDone {
		t.Errorf("Statuses = %v, want workflow order", domain.Statuses)
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		in      string
		want    domain.Status
		wantErr string // "" means valid
	}{
		{"PENDING", domain.StatusPending, ""},
		{"IN_PROGRESS", domain.StatusInProgress, ""},
		{"DONE", domain.StatusDone, ""},
		{"", "", "is required"},
		{"pending", "", "must be one of PENDING, IN_PROGRESS, DONE"},
		{"In_Progress", "", "must be one of PENDING, IN_PROGRESS, DONE"},
		{" DONE", "", "must be one of PENDING, IN_PROGRESS, DONE"},
		{"CANCELLED", "", "must be one of PENDING, IN_PROGRESS, DONE"},
	}
	for _, tt := range tests {
		got, err := domain.ParseStatus("status", tt.in)
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseStatus(%q) = %q, %v; want %q, nil", tt.in, got, err, tt.want)
			}
			continue
		}
		assertFields(t, err, field{"status", tt.wantErr})
		if got != "" {
			t.Errorf("ParseStatus(%q) returned %q with an error", tt.in, got)
		}
	}
}
