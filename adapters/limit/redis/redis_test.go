package redislimit

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/activityd/activityd/ports"
	"github.com/activityd/activityd/test/limittest"
	"github.com/activityd/activityd/test/testenv"
)

// open returns a limiter on TEST_REDIS_URL under a key prefix of t's own,
// and deletes its keys when t ends (redis_rate puts "rate:" before them,
// out of testenv's reach).
func open(t *testing.T) ports.Limiter {
	t.Helper()
	url, prefix := testenv.RedisURL(t)
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		keys, err := c.Keys(ctx, "rate:"+prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			err = c.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("delete the limiter's keys: %v", err)
		}
		c.Close()
	})
	return New(c, Options{KeyPrefix: prefix, Timeout: time.Second})
}

func TestContract(t *testing.T) {
	limittest.Run(t, open)
}

// TestSharedBudget: two limiters on one Redis (two replicas) spend one
// budget per key.
func TestSharedBudget(t *testing.T) {
	url, prefix := testenv.RedisURL(t)
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	ca, cb := redis.NewClient(o), redis.NewClient(o)
	t.Cleanup(func() { ca.Del(context.Background(), "rate:"+prefix+"k"); ca.Close(); cb.Close() })
	a, b := New(ca, Options{KeyPrefix: prefix}), New(cb, Options{KeyPrefix: prefix})
	lim := ports.Limit{Rate: 1, Period: time.Hour, Burst: 4}
	allowed := 0
	for i := range 10 {
		l := a
		if i%2 == 1 {
			l = b
		}
		d, err := l.Allow(t.Context(), "k", lim)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			allowed++
		}
	}
	if allowed != lim.Burst {
		t.Fatalf("10 requests across two limiters under a shared burst of %d: %d allowed", lim.Burst, allowed)
	}
}

// TestUnreachable: with Redis gone, Allow returns an error within its
// timeout rather than a decision.
func TestUnreachable(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	l := New(c, Options{Timeout: 200 * time.Millisecond})
	d, err := l.Allow(t.Context(), "k", ports.Limit{Rate: 1, Period: time.Second, Burst: 1})
	if err == nil {
		t.Fatalf("Allow with Redis unreachable: %+v and no error", d)
	}
}
