package memory_test

import (
	"testing"

	"github.com/activityd/activityd/adapters/storage/memory"
	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/storagetest"
)

func TestContract(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) ports.Store {
		s := memory.New()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
