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
