package ports

import (
	"context"
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
