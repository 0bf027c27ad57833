// Package memcache is the in-process ports.Cache, used when REDIS_URL is
// not set and in tests. It is bounded (entries and bytes for values, a
// count for generation counters), evicts the least recently used entry
// first, expires each value after its TTL and is safe for concurrent use.
// Values are copied on Set and on Get, so callers may reuse their buffers.
//
// Generation counters live outside the value space (a value and a counter
// may share a key without meeting) and never expire; they are evicted, least
// recently used first, only when there are more than MaxCounters of them.
// Forgetting a counter must never let it take a value again that a live
// cached entry may embed, nor let a reader see a value under which stale
// data may be stored. So the cache remembers the largest value it has
// evicted (the floor): an absent counter reads as the floor (0 until the
// first eviction, so a never-bumped counter reads 0), and one created by
// Bump starts above both the floor and the current time in microseconds,
// then increments. While a counter lives, Bump adds exactly one.
package memcache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/activityd/activityd/ports"
)

// Defaults for zero Options fields.
const (
	DefaultMaxEntries  = 100_000
	DefaultMaxBytes    = 64 << 20
	DefaultMaxCounters = 100_000
)

// entryOverhead approximates the bookkeeping bytes of one value entry (map
// slot, list element, entry struct), counted against MaxBytes with the key
// and the value.
const entryOverhead = 128

// ErrTooLarge is returned (wrapped) by Set for a value above an eighth of
// MaxBytes: one such value would evict a large part of the cache.
var ErrTooLarge = errors.New("memcache: value too large")

// Options bound the cache; zero fields take the defaults.
type Options struct {
	// MaxEntries bounds the number of values (default DefaultMaxEntries).
	MaxEntries int
	// MaxBytes bounds the bytes of keys, values and per-entry overhead
	// (default DefaultMaxBytes). A single value may use at most an eighth.
	MaxBytes int64
	// MaxCounters bounds the number of generation counters (default
	// DefaultMaxCounters).
	MaxCounters int
}

// Stats is a snapshot of the cache's size.
type Stats struct {
	Entries  int   // values held, expired ones not yet dropped included
	Bytes    int64 // bytes counted against MaxBytes
	Counters int   // generation counters held
	Floor    int64 // largest counter value evicted so far (0 if none)
}

// Cache is the in-process cache. The zero value is not usable; call New.
type Cache struct {
	maxEntries  int
	maxBytes    int64
	maxCounters int
	now         func() time.Time // time.Now, replaced by tests

	mu       sync.Mutex
	values   map[string]*list.Element // of *entry
	lru      list.List                // of *entry, most recently used first
	bytes    int64
	counters map[string]*list.Element // of *counter
	clru     list.List                // of *counter, most recently used first
	floor    int64
}

type entry struct {
	key     string
	value   []byte // never modified after Set stores it
	expires time.Time
	size    int64
}

type counter struct {
	key   string
	value int64
}

// New returns an empty cache bounded by opts.
func New(opts Options) *Cache {
	c := &Cache{
		maxEntries:  opts.MaxEntries,
		maxBytes:    opts.MaxBytes,
		maxCounters: opts.MaxCounters,
		now:         time.Now,
		values:      make(map[string]*list.Element),
		counters:    make(map[string]*list.Element),
	}
	if c.maxEntries <= 0 {
		c.maxEntries = DefaultMaxEntries
	}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxBytes
	}
	if c.maxCounters <= 0 {
		c.maxCounters = DefaultMaxCounters
	}
	return c
}

// Get returns a copy of the live value stored under key.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("memcache: get: %w", err)
	}
	now := c.now()
	c.mu.Lock()
	el, ok := c.values[key]
	if !ok {
		c.mu.Unlock()
		return nil, false, nil
	}
	e := el.Value.(*entry)
	if !now.Before(e.expires) {
		c.removeValue(el)
		c.mu.Unlock()
		return nil, false, nil
	}
	c.lru.MoveToFront(el)
	v := e.value
	c.mu.Unlock()
	// The stored slice is immutable, so it can be copied outside the lock.
	out := make([]byte, len(v))
	copy(out, v)
	return out, true, nil
}

// Set stores a copy of value under key for ttl, evicting the least
// recently used values while the cache is over its bounds.
func (c *Cache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memcache: set: %w", err)
	}
	if ttl <= 0 {
		return fmt.Errorf("memcache: set: ttl %v is not positive", ttl)
	}
	size := int64(len(key)+len(value)) + entryOverhead
	if size > c.maxBytes/8 {
		c.mu.Lock()
		if el, ok := c.values[key]; ok { // a failed overwrite leaves no old value
			c.removeValue(el)
		}
		c.mu.Unlock()
		return fmt.Errorf("%w: %d bytes with its key, at most %d", ErrTooLarge, size, c.maxBytes/8)
	}
	v := make([]byte, len(value))
	copy(v, value)
	e := &entry{key: key, value: v, expires: c.now().Add(ttl), size: size}

	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.values[key]; ok {
		old := el.Value.(*entry)
		c.bytes += e.size - old.size
		el.Value = e
		c.lru.MoveToFront(el)
	} else {
		c.values[key] = c.lru.PushFront(e)
		c.bytes += e.size
	}
	for len(c.values) > c.maxEntries || c.bytes > c.maxBytes {
		c.removeValue(c.lru.Back())
	}
	return nil
}

// removeValue drops a value entry; c.mu is held.
func (c *Cache) removeValue(el *list.Element) {
	e := c.lru.Remove(el).(*entry)
	delete(c.values, e.key)
	c.bytes -= e.size
}

// Generations returns the counters' values: a counter never bumped reads 0,
// one evicted reads the floor.
func (c *Cache) Generations(ctx context.Context, keys ...string) ([]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memcache: generations: %w", err)
	}
	out := make([]int64, len(keys))
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, k := range keys {
		if el, ok := c.counters[k]; ok {
			c.clru.MoveToFront(el)
			out[i] = el.Value.(*counter).value
		} else {
			out[i] = c.floor
		}
	}
	return out, nil
}

// Bump increments each counter; an absent one is created above the floor
// and the current time in microseconds.
func (c *Cache) Bump(ctx context.Context, keys ...string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memcache: bump: %w", err)
	}
	if len(keys) == 0 {
		return nil
	}
	now := c.now().UnixMicro()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if el, ok := c.counters[k]; ok {
			el.Value.(*counter).value++
			c.clru.MoveToFront(el)
			continue
		}
		c.counters[k] = c.clru.PushFront(&counter{key: k, value: max(now, c.floor) + 1})
	}
	for len(c.counters) > c.maxCounters {
		old := c.clru.Remove(c.clru.Back()).(*counter)
		delete(c.counters, old.key)
		c.floor = max(c.floor, old.value)
	}
	return nil
}

// Stats reports the cache's current size.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Entries: len(c.values), Bytes: c.bytes, Counters: len(c.counters), Floor: c.floor}
}

// GetLatest implements ports.LatestGetter: Generations, then Get of the
// value they name.
func (c *Cache) GetLatest(ctx context.Context, counters []string, prefix, suffix string) ([]int64, []byte, bool, error) {
	gens, err := c.Generations(ctx, counters...)
	if err != nil {
		return nil, nil, false, err
	}
	v, ok, err := c.Get(ctx, ports.KeyAt(prefix, gens, suffix))
	if err != nil {
		return nil, nil, false, err
	}
	return gens, v, ok, nil
}
