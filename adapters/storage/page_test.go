package storage_test

import (
	"slices"
	"testing"

	"github.com/activityd/activityd/adapters/storage"
)

func TestTrimPage(t *testing.T) {
	after := func(v int) *int { return &v }
	for _, tc := range []struct {
		name  string
		rows  []int
		limit int
		want  []int
		next  *int // nil: the last page
	}{
		{"no rows", nil, 3, nil, nil},
		{"fewer than a page", []int{1, 2}, 3, []int{1, 2}, nil},
		{"exactly a page", []int{1, 2, 3}, 3, []int{1, 2, 3}, nil},
		{"one more than a page", []int{1, 2, 3, 4}, 3, []int{1, 2, 3}, after(3)},
		{"a page of one", []int{7, 8}, 1, []int{7}, after(7)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, next := storage.TrimPage(slices.Clone(tc.rows), tc.limit, after)
			if !slices.Equal(got, tc.want) {
				t.Errorf("page %v, want %v", got, tc.want)
			}
			switch {
			case tc.next == nil && next != nil:
				t.Errorf("next %d, want none: the last page", *next)
			case tc.next != nil && next == nil:
				t.Errorf("no next, want after %d", *tc.next)
			case tc.next != nil && *next != *tc.next:
				t.Errorf("next after %d, want after %d", *next, *tc.next)
			}
		})
	}
}
