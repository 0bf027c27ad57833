package ports

import (
	"context"
	"strconv"
	"time"
)

// Cache holds short-lived copies of read results, and the generation
// counters that make writes invalidate them. Implementations bound every
// call by a short timeout and return errors instead of blocking: the app
// treats a failing cache as absent (the read goes to storage) and never
// turns a cache error into a client error.
type Cache interface {
	// Get returns the value stored under key; ok is false on a miss.
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	// Set stores value under key for ttl (> 0).
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Generations returns the current value of each counter, in one round
	// trip: 0 for one never bumped (an adapter that evicts counters may
	// return a floor at or above every value it evicted).
	Generations(ctx context.Context, keys ...string) ([]int64, error)
	// Bump makes each counter larger than any value it has had, in one
	// round trip: by one while it lives; an absent counter (never bumped,
	// expired or evicted) restarts above every earlier value. Counters
	// outlive every cached value whose key embeds them.
	Bump(ctx context.Context, keys ...string) error
}

// LatestGetter is implemented by a Cache that can read generation counters
// and the value they name as one operation, so that a cache hit costs one
// round trip instead of two. The value read is the one stored under
// KeyAt(prefix, gens, suffix), gens being the counters' values as returned.
// An adapter that cannot do it in its current deployment (a Redis Cluster,
// where the value and the counters may live on different nodes) returns an
// error matching errors.ErrUnsupported, and callers use Generations and Get.
type LatestGetter interface {
	GetLatest(ctx context.Context, counters []string, prefix, suffix string) (gens []int64, value []byte, ok bool, err error)
}

// KeyAt is the key of a value cached under the generations gens: prefix,
// each generation in decimal, then suffix, separated by colons.
func KeyAt(prefix string, gens []int64, suffix string) string {
	b := make([]byte, 0, len(prefix)+len(suffix)+len(gens)*21+1)
	b = append(b, prefix...)
	for _, g := range gens {
		b = append(b, ':')
		b = strconv.AppendInt(b, g, 10)
	}
	b = append(b, ':')
	b = append(b, suffix...)
	return string(b)
}

// CacheLedger is kept by a store that every replica shares, so that the
// read cache can promise fresh reads on every replica through cache
// faults: an invalidation the cache could not take is recorded here, and
// every replica delivers it to the cache before it trusts the cache again;
// and the cache server's identity is recorded with an epoch that moves on
// whenever it changes, so data cached on a server that restarted from an
// old snapshot, or on a replica that lagged before a failover, is never
// reached again.
type CacheLedger interface {
	// RecordMissed durably records counters whose bump the cache did not
	// take. Records are numbered in the order they commit.
	RecordMissed(ctx context.Context, counters []string) error
	// Missed returns the counters recorded after seq (all retained ones for
	// seq 0), the number of the latest record (seq when there is none
	// newer), and the current epoch.
	Missed(ctx context.Context, seq int64) (LedgerState, error)
	// Rebase records that the cache is served by instance. When that
	// differs from the instance recorded, the epoch moves on (the first
	// instance ever recorded starts it at 1). It returns the current epoch.
	Rebase(ctx context.Context, instance string) (epoch int64, err error)
	// PruneMissed deletes the records made before t.
	PruneMissed(ctx context.Context, t time.Time) error
}

// LedgerState is what CacheLedger.Missed reports.
type LedgerState struct {
	Epoch    int64    // 0 until an instance was recorded
	Seq      int64    // the latest record's number
	Counters []string // recorded after the seq asked for, possibly repeated
}

// InstanceWatcher is implemented by a Cache whose contents can roll back
// or vanish while the service runs (a server restart that reloads an old
// snapshot, a failover to a replica that lagged). WatchInstance makes it
// call fn with the server's identity (Redis's run_id) on each new
// connection, before the connection serves a call; when fn returns an
// error the connection is not used and the call fails.
type InstanceWatcher interface {
	WatchInstance(fn func(ctx context.Context, instance string) error)
}
