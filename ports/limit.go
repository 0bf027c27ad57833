package ports

import (
	"context"
	"fmt"
	"time"
)

// Limiter decides whether one more request under a key (a principal's
// name) fits a rate limit. Implementations keep one budget per key: an
// in-process one per replica, a shared one (Redis) for all replicas.
// Callers treat an error as "no decision" and serve the request: a limiter
// that fails must never take the service down with it.
type Limiter interface {
	// Allow takes one request from key's budget under limit and says
	// whether it fit. A denied request takes nothing. limit must be valid
	// (Limit.Valid); the same key should always be asked with the same
	// limit.
	Allow(ctx context.Context, key string, limit Limit) (Decision, error)
}

// Limit is a rate: Rate requests per Period, with bursts of up to Burst
// requests at once (the budget when the key has been idle). It is a
// generic cell rate (token bucket) limit: one request's worth of budget
// comes back every Period/Rate.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// Valid reports whether l can be enforced: a positive rate, period and
// burst.
func (l Limit) Valid() error {
	if l.Rate <= 0 || l.Period <= 0 || l.Burst <= 0 {
		return fmt.Errorf("limit %d per %v, burst %d: rate, period and burst must be positive", l.Rate, l.Period, l.Burst)
	}
	return nil
}

// Decision is a Limiter's answer for one request.
type Decision struct {
	Allowed bool
	// Remaining is how many more requests fit right now (after this one,
	// when it was allowed).
	Remaining int
	// RetryAfter is how long until one more request fits; 0 when Allowed.
	RetryAfter time.Duration
	// ResetAfter is how long until the whole burst is available again.
	ResetAfter time.Duration
}
