package memory_test

import (
	"testing"

	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/storagetest"
	"github.com/activityd/activityd/test/stores"
)

func TestContract(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) ports.Store { return stores.Memory(t) })
}

func TestWebhooksContract(t *testing.T) {
	storagetest.RunWebhooks(t, func(t *testing.T) ports.Webhooks { return stores.Memory(t) })
}
