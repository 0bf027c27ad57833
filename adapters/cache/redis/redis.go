// Package rediscache is the ports.Cache on Redis (one server, Cluster or
// Sentinel, through go-redis's UniversalClient), used when REDIS_URL is
// set.
//
// Every call is bounded by Options.Timeout (50ms by default) and fails
// with an error rather than waiting on a dead or slow Redis; go-redis
// redials on its own, so the cache recovers when Redis comes back without
// being reopened.
//
// Keys: values live under KeyPrefix+"v:"+key and generation counters under
// KeyPrefix+"g:"+key, so a value and a counter may share a key without
// meeting. The prefix should not contain '{', which would turn into a
// Cluster hash tag.
//
// Counters: a counter expires CounterTTL after its last Bump, which keeps
// Redis from filling with counters of users no longer active. An absent
// counter reads 0. Bump runs, atomically for each counter (one Lua script
// per key, all pipelined in one round trip):
//
//	if the counter is absent, set it to the server's time in microseconds
//	INCR it
//	PEXPIRE it CounterTTL
//
// so a counter that expired starts again far above any value it had (a
// counter would need a million bumps a second for its whole life to catch
// up with the clock), and one that lives gains exactly one per Bump.
//
// The invariant the app relies on: CounterTTL exceeds the lifetime of any
// value whose key embeds the counter, by more than the longest read (the
// time from Generations to the Set of what was loaded). Then a counter can
// expire only when every value stored under its earlier numbers (0
// included) is gone. Set enforces a margin by refusing a ttl above half
// of CounterTTL; the configuration should check the same at start-up.
//
// Tracing: with Options.TracerProvider set, each command (or pipeline) run
// under a span becomes a client span of its own, its child, through
// go-redis's OpenTelemetry hook (see tracing.go).
//
// Under memory pressure, use maxmemory-policy volatile-ttl (or noeviction):
// it evicts values, which expire sooner, before counters. A policy that may
// evict a live counter can make readers see 0 and hit entries stored before
// the counter's first Bump until their TTL ends.
package rediscache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.opentelemetry.io/otel/trace"
)

// Defaults for zero Options fields.
const (
	DefaultTimeout     = 50 * time.Millisecond
	DefaultCounterTTL  = 24 * time.Hour
	minimumDialTimeout = 200 * time.Millisecond
)

// Options tune the cache; zero fields take the defaults.
type Options struct {
	// KeyPrefix is put before every key and counter, e.g. "activityd:".
	KeyPrefix string
	// Timeout bounds each call, including waiting for a connection
	// (default DefaultTimeout). It is also go-redis's read, write and pool
	// timeout.
	Timeout time.Duration
	// DialTimeout bounds establishing one connection, TLS handshake
	// included (default: Timeout, but at least 200ms). go-redis dials in
	// the background, so a call still waits at most Timeout; a longer
	// dial only lets a slow network connect for the calls that follow.
	DialTimeout time.Duration
	// CounterTTL is how long a counter lives after its last Bump (default
	// DefaultCounterTTL). It must exceed every value TTL with a margin:
	// Set refuses a ttl above CounterTTL/2.
	CounterTTL time.Duration
	// TracerProvider, when set, traces the Redis commands run within a
	// span (a request's, a task's) as its children; commands with no span
	// in their context are not traced. nil: no tracing, and no hook at all.
	TracerProvider trace.TracerProvider
}

// Cache is the Redis cache.
type Cache struct {
	client     redis.UniversalClient
	prefix     string
	timeout    time.Duration
	counterTTL time.Duration
	watch      atomic.Pointer[func(context.Context, string) error] // WatchInstance's fn
}

// Open builds the cache for a REDIS_URL (see ParseURL for its forms). It
// does not contact Redis: the cache works when Redis comes up, and Ping
// tells whether it is up.
func Open(rawURL string, opts Options) (*Cache, error) {
	uo, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return New(uo, opts), nil
}

// New builds the cache from universal options, adding the timeouts of opts
// to uo (which it modifies). Open is New after ParseURL.
func New(uo *redis.UniversalOptions, opts Options) *Cache {
	opts = opts.withDefaults()
	applyTimeouts(uo, opts)
	c := &Cache{
		prefix:     opts.KeyPrefix,
		timeout:    opts.Timeout,
		counterTTL: opts.CounterTTL,
	}
	next := uo.OnConnect
	uo.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
		if next != nil {
			if err := next(ctx, cn); err != nil {
				return err
			}
		}
		return c.onConnect(ctx, cn)
	}
	c.client = redis.NewUniversalClient(uo)
	if opts.TracerProvider != nil {
		instrumentTracing(c.client, opts.TracerProvider)
	}
	return c
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = max(o.Timeout, minimumDialTimeout)
	}
	if o.CounterTTL <= 0 {
		o.CounterTTL = DefaultCounterTTL
	}
	return o
}

// applyTimeouts sets go-redis's own limits so that no call outlives the
// cache's Timeout, whether Redis is dead (connection refused, or no answer
// at all) or slow.
func applyTimeouts(uo *redis.UniversalOptions, o Options) {
	uo.DialTimeout = o.DialTimeout
	// One dial attempt per connection: the next call dials again anyway,
	// and failed dials open go-redis's breaker (it then fails calls at once
	// and probes every second) instead of holding pool slots.
	uo.DialerRetries = 1
	// No command retries: within a budget of tens of milliseconds a retry
	// rarely succeeds, and with Redis down each call would spend the whole
	// budget retrying instead of failing at once on the refused dial.
	// (Idle connections are health-checked before use, so a Redis restart
	// does not surface as errors on stale connections.)
	uo.MaxRetries = -1
	uo.ReadTimeout = o.Timeout
	uo.WriteTimeout = o.Timeout
	uo.PoolTimeout = o.Timeout
	// Socket deadlines also follow each call's context deadline.
	uo.ContextTimeoutEnabled = true
	// Spare each new connection a handshake round trip that only Redis
	// Enterprise/Cloud answers.
	uo.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}

// Client returns the go-redis client.
func (c *Cache) Client() redis.UniversalClient { return c.client }

// Close closes the client's connections.
func (c *Cache) Close() error {
	if err := c.client.Close(); err != nil {
		return fmt.Errorf("rediscache: close: %w", err)
	}
	return nil
}

// Ping checks that Redis answers within the timeout, for readiness
// reports.
func (c *Cache) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("rediscache: ping: %w", err)
	}
	return nil
}

func (c *Cache) valueKey(key string) string   { return c.prefix + "v:" + key }
func (c *Cache) counterKey(key string) string { return c.prefix + "g:" + key }

// Get returns the value stored under key; a miss is ok=false and no error.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	v, err := c.client.Get(ctx, c.valueKey(key)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("rediscache: get: %w", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// Set stores value under key for ttl, rounded up to whole milliseconds.
// ttl must be positive and at most CounterTTL/2.
func (c *Cache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	switch {
	case ttl <= 0:
		return fmt.Errorf("rediscache: set: ttl %v is not positive", ttl)
	case ttl > c.counterTTL/2:
		return fmt.Errorf("rediscache: set: ttl %v is above half the counter TTL %v, so counters could expire before values that embed them", ttl, c.counterTTL)
	}
	if r := ttl % time.Millisecond; r != 0 {
		ttl += time.Millisecond - r
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.client.Set(ctx, c.valueKey(key), value, ttl).Err(); err != nil {
		return fmt.Errorf("rediscache: set: %w", err)
	}
	return nil
}

// Generations returns the counters' values, 0 for an absent one, in one
// round trip (one per node involved, in parallel, on a Cluster).
func (c *Cache) Generations(ctx context.Context, keys ...string) ([]int64, error) {
	if len(keys) == 0 {
		return []int64{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	pipe := c.client.Pipeline()
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Get(ctx, c.counterKey(k))
	}
	// Exec's error is the first command's, redis.Nil included: read each.
	_, _ = pipe.Exec(ctx)
	out := make([]int64, len(keys))
	for i, cmd := range cmds {
		s, err := cmd.Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return nil, fmt.Errorf("rediscache: generations: %w", err)
		}
		if out[i], err = strconv.ParseInt(s, 10, 64); err != nil {
			return nil, fmt.Errorf("rediscache: generations: counter %q holds %q, not an integer", keys[i], s)
		}
	}
	return out, nil
}

// bumpScript increments one counter, creating it from the server's clock
// in microseconds when absent, and renews its expiry. KEYS[1] is the
// counter, ARGV[1] its TTL in milliseconds. TIME's two parts are joined as
// strings: a Lua number would print a 16-digit value in exponent form.
const bumpScript = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[1], t[1] .. string.format('%06d', tonumber(t[2])))
end
local v = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return v
`

// Bump increments each counter in one round trip (one per node involved
// on a Cluster). Each counter's update is atomic; the set of them is not.
// When Bump fails part-way or times out, some counters may have moved,
// possibly by more than one if go-redis retried: harmless, since only
// their growth matters.
func (c *Cache) Bump(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ttl := c.counterTTL.Milliseconds()
	pipe := c.client.Pipeline()
	for _, k := range keys {
		pipe.Eval(ctx, bumpScript, []string{c.counterKey(k)}, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("rediscache: bump: %w", err)
	}
	return nil
}

// latestScript reads the counters KEYS (absent: '0'), then the value under
// ARGV[1] .. ':' .. each counter .. ':' .. ARGV[2], and returns the
// counters and the value (nil on a miss). The counters stay strings: a Lua
// number would print a 16-digit value in exponent form. The value's key is
// not among KEYS, so this works on a single Redis (and through Sentinel),
// not on a Cluster.
var latestScript = redis.NewScript(`
local key = ARGV[1]
local out = {}
for i, k in ipairs(KEYS) do
  local g = redis.call('GET', k)
  if not g then g = '0' end
  out[i] = g
  key = key .. ':' .. g
end
out[#KEYS + 1] = redis.call('GET', key .. ':' .. ARGV[2])
return out
`)

// GetLatest implements ports.LatestGetter: the counters and the value
// they name in one round trip, with one script. On a Cluster it returns
// errors.ErrUnsupported.
func (c *Cache) GetLatest(ctx context.Context, counters []string, prefix, suffix string) ([]int64, []byte, bool, error) {
	if _, cluster := c.client.(*redis.ClusterClient); cluster {
		return nil, nil, false, fmt.Errorf("rediscache: get latest on a Cluster: %w", errors.ErrUnsupported)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	keys := make([]string, len(counters))
	for i, k := range counters {
		keys[i] = c.counterKey(k)
	}
	res, err := latestScript.Run(ctx, c.client, keys, c.valueKey(prefix), suffix).Slice()
	if err != nil {
		return nil, nil, false, fmt.Errorf("rediscache: get latest: %w", err)
	}
	if len(res) < len(counters) || len(res) > len(counters)+1 {
		return nil, nil, false, fmt.Errorf("rediscache: get latest: %d results for %d counters", len(res), len(counters))
	}
	gens := make([]int64, len(counters))
	for i := range counters {
		s, ok := res[i].(string)
		if !ok {
			return nil, nil, false, fmt.Errorf("rediscache: get latest: counter %q is a %T", counters[i], res[i])
		}
		if gens[i], err = strconv.ParseInt(s, 10, 64); err != nil {
			return nil, nil, false, fmt.Errorf("rediscache: get latest: counter %q holds %q, not an integer", counters[i], s)
		}
	}
	if len(res) == len(counters) || res[len(counters)] == nil {
		return gens, nil, false, nil
	}
	v, ok := res[len(counters)].(string)
	if !ok {
		return nil, nil, false, fmt.Errorf("rediscache: get latest: value is a %T", res[len(counters)])
	}
	return gens, []byte(v), true, nil
}

// WatchInstance implements ports.InstanceWatcher: fn is called with the
// server's run_id on every new connection to a Redis server (a single
// one, or the master through Sentinel), before it serves a call. Redis
// gives a server a new run_id at every start, so a restart (which may
// have reloaded an old snapshot) and a failover both show. Connections
// to Sentinels and to Cluster nodes are not reported: on a Cluster, the
// restart of a node is not detected.
func (c *Cache) WatchInstance(fn func(ctx context.Context, instance string) error) {
	c.watch.Store(&fn)
}

// onConnect runs on every new connection: it asks the server who it is
// when someone watches.
func (c *Cache) onConnect(ctx context.Context, cn *redis.Conn) error {
	fn := c.watch.Load()
	if fn == nil {
		return nil
	}
	info, err := cn.Info(ctx, "server").Result()
	if err != nil {
		return fmt.Errorf("rediscache: identify the server: %w", err)
	}
	mode, id := infoField(info, "redis_mode"), infoField(info, "run_id")
	if mode == "sentinel" || mode == "cluster" {
		return nil
	}
	if id == "" {
		return fmt.Errorf("rediscache: identify the server: INFO server has no run_id")
	}
	return (*fn)(ctx, id)
}

// infoField returns the value of name in an INFO reply ("name:value"
// lines), or "".
func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
