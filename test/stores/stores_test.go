package stores_test

import (
	"testing"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/stores"
)

// Each opener gives an empty, migrated store that is closed when the
// test ends.
func TestAll(t *testing.T) {
	var names []string
	for _, k := range stores.All() {
		names = append(names, k.Name)
		var s ports.Store
		t.Run(k.Name, func(t *testing.T) {
			s = k.Open(t)
			if err := s.Ping(t.Context()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			page, err := s.List(t.Context(), domain.Filter{UserID: 1, Limit: 10, Order: domain.Desc})
			if err != nil || len(page.Events) != 0 {
				t.Fatalf("List on a new store = %+v, %v; want no events", page, err)
			}
			if w, err := s.Watermark(t.Context()); err != nil || w != (domain.Window{}) {
				t.Fatalf("Watermark on a new store = %+v, %v; want none", w, err)
			}
		})
		if s == nil {
			continue // skipped: no PostgreSQL outside CI
		}
		if err := s.Ping(t.Context()); err == nil {
			t.Errorf("%s: Ping after the test ended succeeded: the store was not closed", k.Name)
		}
	}
	if len(names) != 3 {
		t.Errorf("All() = %q, want memory, sqlite and postgres", names)
	}
}
