package postgres

import (
	"testing"

	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/storagetest"
	"github.com/activityd/activityd/test/testenv"
)

// TestContract runs the shared storage contract suite, each subtest on a
// fresh schema.
func TestContract(t *testing.T) {
	testenv.NeedPostgres(t)
	storagetest.Run(t, func(t *testing.T) ports.Store { return newStore(t) })
}

// TestWebhooksContract runs the ports.Webhooks suite, each subtest on a
// fresh schema.
func TestWebhooksContract(t *testing.T) {
	testenv.NeedPostgres(t)
	storagetest.RunWebhooks(t, func(t *testing.T) ports.Webhooks { return newStore(t) })
}
