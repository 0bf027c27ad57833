package domain_test

import (
	"slices"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
)

// Every store pages through Filter.Page and CountFilter.Page: one row
// more than a page is read, cut, and makes the cursor after the last row
// kept.
func TestPage(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	events := func(n int) []domain.Event {
		out := make([]domain.Event, n)
		for i := range out {
			at := t0.Add(time.Duration(i) * time.Second)
			out[i] = domain.Event{ID: domain.NewID(at), RecordedAt: at}
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		rows, lim int
		want      int
		next      bool // a cursor after the last row kept
	}{
		{"no rows", 0, 3, 0, false},
		{"fewer than a page", 2, 3, 2, false},
		{"exactly a page", 3, 3, 3, false},
		{"one more than a page", 4, 3, 3, true},
		{"a page of one", 2, 1, 1, true},
		{"no limit: the default", domain.DefaultLimit + 1, 0, domain.DefaultLimit, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := domain.Filter{Limit: tc.lim, Order: domain.Asc, TimeField: domain.ByRecordedAt}
			rows := events(tc.rows)
			p := f.Page(slices.Clone(rows))
			if len(p.Events) != tc.want || !slices.EqualFunc(p.Events, rows[:tc.want], func(a, b domain.Event) bool { return a.ID == b.ID }) {
				t.Fatalf("page of %d events, want the first %d", len(p.Events), tc.want)
			}
			switch {
			case !tc.next && p.Next != nil:
				t.Errorf("next %+v, want none: the last page", p.Next)
			case tc.next && p.Next == nil:
				t.Errorf("no next, want one after the last event kept")
			case tc.next && (p.Next.ID != rows[tc.want-1].ID || !p.Next.Time.Equal(rows[tc.want-1].RecordedAt) || p.Next.Order != domain.Asc):
				t.Errorf("next %+v, want after event %d", p.Next, tc.want-1)
			}
		})
	}

	counts := []domain.WindowCount{{UserCount: domain.UserCount{UserID: 1}, Start: t0}, {UserCount: domain.UserCount{UserID: 2}, Start: t0}, {UserCount: domain.UserCount{UserID: 3}, Start: t0}}
	f := domain.CountFilter{Limit: 2, Order: domain.Desc}
	p := f.Page(counts)
	if len(p.Counts) != 2 || p.Next == nil || p.Next.UserID != 2 || !p.Next.WindowStart.Equal(t0) {
		t.Errorf("count page %+v, next %+v; want 2 counts and a cursor after user 2", p.Counts, p.Next)
	}
	if p := f.Page(counts[:2]); len(p.Counts) != 2 || p.Next != nil {
		t.Errorf("last count page: %+v, next %+v", p.Counts, p.Next)
	}
	if got := (domain.CountFilter{}).PageSize(); got != domain.DefaultLimit {
		t.Errorf("CountFilter PageSize() = %d, want the default %d", got, domain.DefaultLimit)
	}
}
