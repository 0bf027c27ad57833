package storage_test

import (
	"slices"
	"testing"

	"github.com/activityd/activityd/adapters/storage"
)

func TestReady(t *testing.T) {
	ch := make(chan int, 10)
	for i := range 5 {
		ch <- i
	}
	if got := storage.Ready(ch, []int{-1}, 3); !slices.Equal(got, []int{-1, 0, 1}) {
		t.Errorf("up to the limit: %v", got)
	}
	if got := storage.Ready(ch, nil, 10); !slices.Equal(got, []int{2, 3, 4}) {
		t.Errorf("what is ready, without waiting: %v", got)
	}
	ch <- 9
	close(ch)
	if got := storage.Ready(ch, nil, 10); !slices.Equal(got, []int{9}) {
		t.Errorf("closed channel: %v", got)
	}
}
