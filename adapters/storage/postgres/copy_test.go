package postgres

import (
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
)

// TestCreateManyCopyFallsBack: a batch large enough for COPY that holds an
// id already stored (at its place, or claimed by a client in event_ids)
// is rolled back to its savepoint and stored statement by statement: every
// other event is created once, the taken id is reported as existing.
func TestCreateManyCopyFallsBack(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	batch := func(n int, at time.Time) []domain.Event {
		es := make([]domain.Event, n)
		for i := range es {
			es[i] = mkEvent(int64(1+i%7), "login", at.Add(time.Duration(i)*time.Microsecond))
		}
		return es
	}
	for _, tc := range []struct {
		name  string
		taken func(t *testing.T, s *Store, e domain.Event) domain.Event // stores an event with e's id; returns it
	}{
		{"stored at its place", func(t *testing.T, s *Store, e domain.Event) domain.Event {
			got, created, err := s.Create(t.Context(), e, "first")
			if err != nil || !created {
				t.Fatalf("Create: %v %v", created, err)
			}
			return got
		}},
		{"claimed by a client", func(t *testing.T, s *Store, e domain.Event) domain.Event {
			// The same id, recorded at another time: claimed in event_ids.
			e.RecordedAt, e.UpdatedAt = e.RecordedAt.Add(-time.Hour), e.RecordedAt.Add(-time.Hour)
			got, created, err := s.Create(t.Context(), e, "first")
			if err != nil || !created {
				t.Fatalf("Create: %v %v", created, err)
			}
			return got
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			es := batch(2*copyMin, now)
			first := tc.taken(t, s, es[copyMin])
			out, err := s.CreateMany(t.Context(), es, "batch")
			if err != nil {
				t.Fatalf("CreateMany: %v", err)
			}
			for i, r := range out {
				switch {
				case i == copyMin:
					if r.Created || r.Event.RecordedAt != first.RecordedAt {
						t.Errorf("the taken id: created %v, recorded_at %v; want the first one (%v)", r.Created, r.Event.RecordedAt, first.RecordedAt)
					}
				case !r.Created || r.Event.ID != es[i].ID:
					t.Errorf("event %d: created %v, id %s; want created %s", i, r.Created, r.Event.ID, es[i].ID)
				}
			}
			var rows, distinct int
			if err := s.db.QueryRowContext(t.Context(), `SELECT count(*), count(DISTINCT id) FROM events`).Scan(&rows, &distinct); err != nil {
				t.Fatal(err)
			}
			if rows != len(es) || distinct != len(es) {
				t.Errorf("%d rows, %d distinct ids; want %d each", rows, distinct, len(es))
			}
		})
	}
	t.Run("copied", func(t *testing.T) {
		s := newStore(t)
		es := batch(copyMin, now)
		out, err := s.CreateMany(t.Context(), es, "batch")
		if err != nil {
			t.Fatalf("CreateMany: %v", err)
		}
		for i, r := range out {
			got, err := s.Get(t.Context(), es[i].ID)
			if !r.Created || err != nil || got.RecordedAt != es[i].RecordedAt || string(got.Metadata) != string(es[i].Metadata) {
				t.Fatalf("event %d: created %v; stored %+v, %v", i, r.Created, got, err)
			}
			if h, err := s.History(t.Context(), es[i].ID); err != nil || len(h) != 1 || h[0].By != "batch" {
				t.Fatalf("event %d: history %+v, %v", i, h, err)
			}
		}
	})
}
