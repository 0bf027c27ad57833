package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestRedisURLPrefixAndCleanup(t *testing.T) {
	var prefix string
	t.Run("inner", func(t *testing.T) {
		url, p := RedisURL(t)
		if url != RedisBaseURL() {
			t.Fatalf("url %q, want %q", url, RedisBaseURL())
		}
		if !strings.HasPrefix(p, "test:") || !strings.HasSuffix(p, ":") || strings.ContainsAny(p, "*?[]{}") {
			t.Fatalf("prefix %q", p)
		}
		_, p2 := RedisURL(t)
		if p2 == p {
			t.Fatalf("two calls returned the same prefix %q", p)
		}
		prefix = p
		c, err := redisClient(url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, k := range []string{"a", "b", "c"} {
			if err := c.Set(t.Context(), prefix+k, "x", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if prefix == "" {
		t.Skip("inner test skipped")
	}
	c, err := redisClient(RedisBaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	keys, err := c.Keys(t.Context(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("keys left after cleanup: %q", keys)
	}
}

func TestStartRedisStopRestart(t *testing.T) {
	addr, stop, restart := StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return c.Ping(ctx).Err()
	}
	if err := ping(); err != nil {
		t.Fatalf("Ping a started server: %v", err)
	}
	if err := c.Do(t.Context(), "DEBUG", "SLEEP", "0").Err(); err != nil {
		t.Fatalf("DEBUG is not enabled for local clients: %v", err)
	}
	if err := c.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	stop()
	stop() // idempotent
	if err := ping(); err == nil {
		t.Fatal("Ping a stopped server: no error")
	}
	restart()
	restart() // a no-op while it runs
	var err error
	for range 3 { // the first call may meet a pooled connection the kill closed
		if err = ping(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("Ping a restarted server: %v", err)
	}
	if n, err := c.Exists(t.Context(), "k").Result(); err != nil || n != 0 {
		t.Fatalf("a restarted server keeps data (persistence is off): %d, %v", n, err)
	}
}
