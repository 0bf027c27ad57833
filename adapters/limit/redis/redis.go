// Package redislimit is the ports.Limiter shared by every replica, on
// Redis: github.com/go-redis/redis_rate (the generic cell rate algorithm in
// one Lua script, timed by the Redis server's clock, so replicas with
// skewed clocks share one budget exactly). Used when REDIS_URL is set.
//
// A key's budget lives under "rate:" + KeyPrefix + key (redis_rate adds
// "rate:") and expires once it is full again, so idle principals cost
// Redis nothing. Every call is bounded by Options.Timeout; an error is
// returned, never waited out, and the caller decides (activityd serves the
// request: the limiter fails open).
package redislimit

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/activityd/activityd/ports"
)

// DefaultTimeout is Options.Timeout's default.
const DefaultTimeout = 50 * time.Millisecond

// Options tune the limiter; zero fields take the defaults.
type Options struct {
	// KeyPrefix is put before every key, e.g. "activityd:ratelimit:".
	KeyPrefix string
	// Timeout bounds each call (DefaultTimeout).
	Timeout time.Duration
}

// Limiter is the Redis limiter. It is safe for concurrent use.
type Limiter struct {
	rl      *redis_rate.Limiter
	prefix  string
	timeout time.Duration
}

// New returns a limiter over client, which the caller owns (and closes).
func New(client redis.UniversalClient, opts Options) *Limiter {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	return &Limiter{rl: redis_rate.NewLimiter(client), prefix: opts.KeyPrefix, timeout: opts.Timeout}
}

// Allow implements ports.Limiter.
func (l *Limiter) Allow(ctx context.Context, key string, limit ports.Limit) (ports.Decision, error) {
	if err := limit.Valid(); err != nil {
		return ports.Decision{}, fmt.Errorf("redislimit: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	res, err := l.rl.Allow(ctx, l.prefix+key, redis_rate.Limit{Rate: limit.Rate, Period: limit.Period, Burst: limit.Burst})
	if err != nil {
		return ports.Decision{}, fmt.Errorf("redislimit: allow: %w", err)
	}
	d := ports.Decision{
		Allowed:    res.Allowed > 0,
		Remaining:  res.Remaining,
		ResetAfter: max(res.ResetAfter, 0),
	}
	if !d.Allowed {
		d.Remaining = 0
		d.RetryAfter = max(res.RetryAfter, time.Nanosecond)
	}
	return d, nil
}
