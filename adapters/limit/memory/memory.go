// Package memlimit is the in-process ports.Limiter: one token bucket
// (golang.org/x/time/rate) per key, in a table bounded by a
// least-recently-used eviction (hashicorp/golang-lru), so that memory stays
// bounded however many keys are seen. Its budgets are this process's only:
// several replicas each allow the full rate. Used when REDIS_URL is unset.
package memlimit

import (
	"context"
	"fmt"
	"math"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/activityd/activityd/ports"
)

// DefaultMaxKeys is Options.MaxKeys's default.
const DefaultMaxKeys = 10_000

// Options tune the limiter; zero fields take the defaults.
type Options struct {
	// MaxKeys bounds the keys whose budgets are kept (DefaultMaxKeys).
	// Beyond it the least recently used key is forgotten, which gives it
	// a full burst again: keep it above the number of principals active
	// at once.
	MaxKeys int
	// Now is the clock (time.Now); tests set it.
	Now func() time.Time
}

// Limiter is the in-process limiter. It is safe for concurrent use.
type Limiter struct {
	buckets *lru.Cache[string, *bucket]
	now     func() time.Time
}

// bucket is one key's budget, and the limit it was made for.
type bucket struct {
	lim   *rate.Limiter
	limit ports.Limit
}

// New returns an empty limiter.
func New(opts Options) *Limiter {
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c, err := lru.New[string, *bucket](opts.MaxKeys)
	if err != nil { // only for a size <= 0, excluded above
		panic(fmt.Sprintf("memlimit: %v", err))
	}
	return &Limiter{buckets: c, now: opts.Now}
}

// perSecond is l's rate in requests per second.
func perSecond(l ports.Limit) float64 { return float64(l.Rate) / l.Period.Seconds() }

// Allow implements ports.Limiter.
func (l *Limiter) Allow(_ context.Context, key string, limit ports.Limit) (ports.Decision, error) {
	if err := limit.Valid(); err != nil {
		return ports.Decision{}, fmt.Errorf("memlimit: %w", err)
	}
	now := l.now()
	b, ok := l.buckets.Get(key)
	if !ok || b.limit != limit {
		fresh := &bucket{lim: rate.NewLimiter(rate.Limit(perSecond(limit)), limit.Burst), limit: limit}
		if !ok {
			// Another caller may have added the key meanwhile: keep its.
			if prev, found, _ := l.buckets.PeekOrAdd(key, fresh); found && prev.limit == limit {
				fresh = prev
			}
		} else {
			l.buckets.Add(key, fresh) // the limit changed: start over under the new one
		}
		b = fresh
	}
	allowed := b.lim.AllowN(now, 1)
	tokens := max(b.lim.TokensAt(now), 0)
	perSec := perSecond(limit)
	d := ports.Decision{
		Allowed:    allowed,
		Remaining:  int(math.Floor(tokens)),
		ResetAfter: seconds((float64(limit.Burst) - tokens) / perSec),
	}
	if !allowed {
		d.Remaining = 0
		d.RetryAfter = max(seconds((1-tokens)/perSec), time.Nanosecond)
	}
	return d, nil
}

func seconds(s float64) time.Duration {
	if s <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(s * float64(time.Second)))
}

// Len is how many keys have a budget now (at most MaxKeys).
func (l *Limiter) Len() int { return l.buckets.Len() }
