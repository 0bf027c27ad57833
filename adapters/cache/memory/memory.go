// Package memcache is the in-process ports.Cache, used when REDIS_URL is
// not set and in tests. It is bounded (values, generation counters and the
// bytes of both), evicts the least recently used value first, expires each
// value after its TTL and frees it then: a write sweeps the values that
// expired, and so does a timer every SweepInterval while the cache holds
// any, so memory held by expired values is returned without new traffic.
// The bytes counted are what an entry really costs the heap (its key, its
// value's allocation and a measured per-entry overhead; see entryOverhead),
// so MaxBytes bounds memory, not just payload. It is safe for concurrent
// use. Values are copied on Set and on Get, so callers may reuse their
// buffers.
//
// Generation counters live outside the value space (a value and a counter
// may share a key without meeting) and never expire; they are evicted, least
// recently used first, only when there are more than MaxCounters of them
// (or, should counters alone exceed MaxBytes, until they no longer do).
// Forgetting a counter must never let it take a value again that a live
// cached entry may embed, nor let a reader see a value under which stale
// data may be stored. So the cache remembers the largest value it has
// evicted (the floor): an absent counter reads as the floor (0 until the
// first eviction, so a never-bumped counter reads 0), and one created by
// Bump starts above both the floor and the current time in microseconds,
// then increments. While a counter lives, Bump adds exactly one.
package memcache

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/activityd/activityd/ports"
)

// Defaults for zero Options fields.
const (
	DefaultMaxEntries    = 100_000
	DefaultMaxBytes      = 64 << 20
	DefaultMaxCounters   = 100_000
	DefaultSweepInterval = time.Second
)

// entryOverhead is what one value costs the heap besides its key's bytes
// and its value's allocation: the entry (80 bytes), its map slot (24
// bytes, about 40 at the map's usual load) and its expiry-heap slot (8
// bytes, up to 16 while the slice has room to grow), plus the key's
// rounding to an allocation size class. TestBytesAreHonest measures it.
const entryOverhead = 152

// counterOverhead is the same for a generation counter: the counter (48
// bytes) and its map slot.
const counterOverhead = 96

// ErrTooLarge is returned (wrapped) by Set for a value above an eighth of
// MaxBytes: one such value would evict a large part of the cache.
var ErrTooLarge = errors.New("memcache: value too large")

// Options bound the cache; zero fields take the defaults.
type Options struct {
	// MaxEntries bounds the number of values (default DefaultMaxEntries).
	MaxEntries int
	// MaxBytes bounds the bytes of values and counters, overhead included
	// (default DefaultMaxBytes). A single value may use at most an eighth.
	MaxBytes int64
	// MaxCounters bounds the number of generation counters (default
	// DefaultMaxCounters).
	MaxCounters int
	// SweepInterval is how often a timer frees expired values while the
	// cache holds any (default DefaultSweepInterval). Writes free them too.
	SweepInterval time.Duration
}

// Stats is a snapshot of the cache's size.
type Stats struct {
	Entries  int   // values held (an expired one until the next sweep or read)
	Bytes    int64 // bytes counted against MaxBytes: values and counters
	Counters int   // generation counters held
	Floor    int64 // largest counter value evicted so far (0 if none)
}

// Cache is the in-process cache. The zero value is not usable; call New.
type Cache struct {
	maxEntries  int
	maxBytes    int64
	maxCounters int
	sweepEvery  time.Duration
	now         func() time.Time // time.Now, replaced by tests
	epoch       time.Time        // expiries are durations since it (monotonic)

	mu       sync.Mutex
	values   map[string]*entry
	lru      list[entry, *entry]     // values, most recently used first
	expiry   expiryHeap              // values, soonest expiry first
	bytes    int64                   // of values and counters
	counters map[string]*counter     // generation counters
	clru     list[counter, *counter] // counters, most recently used first
	floor    int64
	timer    *time.Timer // the sweep timer, made on the first Set
	armed    bool        // the timer is set to fire
	closed   bool        // Close was called: no more sweeps by timer
}

// entry is one value. Its value is never modified after Set stores it
// (an overwrite replaces the slice), so readers copy it outside the lock.
type entry struct {
	key     string
	value   []byte
	expires time.Duration // since Cache.epoch
	size    int64
	link    link[entry]
	heapIdx int
}

func (e *entry) links() *link[entry] { return &e.link }

type counter struct {
	key   string
	value int64
	link  link[counter]
}

func (c *counter) links() *link[counter] { return &c.link }

// New returns an empty cache bounded by opts.
func New(opts Options) *Cache {
	c := &Cache{
		maxEntries:  opts.MaxEntries,
		maxBytes:    opts.MaxBytes,
		maxCounters: opts.MaxCounters,
		sweepEvery:  opts.SweepInterval,
		now:         time.Now,
		values:      make(map[string]*entry),
		counters:    make(map[string]*counter),
	}
	c.epoch = c.now()
	if c.maxEntries <= 0 {
		c.maxEntries = DefaultMaxEntries
	}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxBytes
	}
	if c.maxCounters <= 0 {
		c.maxCounters = DefaultMaxCounters
	}
	if c.sweepEvery <= 0 {
		c.sweepEvery = DefaultSweepInterval
	}
	return c
}

// Close stops the sweep timer. The cache stays usable; expired values are
// then freed by writes and reads only.
func (c *Cache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
		c.armed = false
	}
}

// at is t as a duration since the cache's epoch: monotonic when both are
// readings of time.Now, so a wall-clock step neither expires nor keeps
// values.
func (c *Cache) at(t time.Time) time.Duration { return t.Sub(c.epoch) }

// Get returns a copy of the live value stored under key.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("memcache: get: %w", err)
	}
	now := c.at(c.now())
	c.mu.Lock()
	e, ok := c.values[key]
	if !ok {
		c.mu.Unlock()
		return nil, false, nil
	}
	if now >= e.expires {
		c.removeValue(e)
		c.mu.Unlock()
		return nil, false, nil
	}
	c.lru.moveToFront(e)
	v := e.value
	c.mu.Unlock()
	// The stored slice is immutable, so it can be copied outside the lock.
	out := make([]byte, len(v))
	copy(out, v)
	return out, true, nil
}

// Set stores a copy of value under key for ttl, freeing expired values,
// then evicting the least recently used ones while the cache is over its
// bounds.
func (c *Cache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memcache: set: %w", err)
	}
	if ttl <= 0 {
		return fmt.Errorf("memcache: set: ttl %v is not positive", ttl)
	}
	if size := valueSize(key, len(value)); size > c.maxBytes/8 {
		c.mu.Lock()
		if e, ok := c.values[key]; ok { // a failed overwrite leaves no old value
			c.removeValue(e)
		}
		c.mu.Unlock()
		return fmt.Errorf("%w: %d bytes with its key, at most %d", ErrTooLarge, size, c.maxBytes/8)
	}
	// append rounds the capacity up to the allocation's size class: what
	// the copy really takes from the heap.
	v := append([]byte(nil), value...)
	if v == nil {
		v = []byte{}
	}
	size := int64(len(key)+cap(v)) + entryOverhead
	now := c.at(c.now())
	expires := now + ttl
	if expires < now { // a TTL of centuries
		expires = math.MaxInt64
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweep(now)
	if e, ok := c.values[key]; ok {
		c.bytes += size - e.size
		e.value, e.size, e.expires = v, size, expires
		heap.Fix(&c.expiry, e.heapIdx)
		c.lru.moveToFront(e)
	} else {
		e := &entry{key: key, value: v, expires: expires, size: size}
		c.values[key] = e
		c.lru.pushFront(e)
		heap.Push(&c.expiry, e)
		c.bytes += size
	}
	for len(c.values) > c.maxEntries || (c.bytes > c.maxBytes && len(c.values) > 0) {
		c.removeValue(c.lru.back())
	}
	c.evictCounters()
	c.arm()
	return nil
}

// valueSize is what Set counts for a value of n bytes under key, before
// the value's rounding to its allocation size class.
func valueSize(key string, n int) int64 { return int64(len(key)+n) + entryOverhead }

// removeValue drops a value entry; c.mu is held.
func (c *Cache) removeValue(e *entry) {
	c.lru.remove(e)
	heap.Remove(&c.expiry, e.heapIdx)
	delete(c.values, e.key)
	c.bytes -= e.size
}

// sweep drops the values expired at now; c.mu is held.
func (c *Cache) sweep(now time.Duration) {
	for len(c.expiry) > 0 && now >= c.expiry[0].expires {
		c.removeValue(c.expiry[0])
	}
}

// arm sets the sweep timer while values are held; c.mu is held.
func (c *Cache) arm() {
	if c.armed || c.closed || len(c.values) == 0 {
		return
	}
	if c.timer == nil {
		c.timer = time.AfterFunc(c.sweepEvery, c.sweepTick)
	} else {
		c.timer.Reset(c.sweepEvery)
	}
	c.armed = true
}

// sweepTick is the timer's sweep, re-armed while values remain.
func (c *Cache) sweepTick() {
	now := c.at(c.now())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = false
	c.sweep(now)
	c.arm()
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
		if ct, ok := c.counters[k]; ok {
			c.clru.moveToFront(ct)
			out[i] = ct.value
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
		if ct, ok := c.counters[k]; ok {
			ct.value++
			c.clru.moveToFront(ct)
			continue
		}
		ct := &counter{key: k, value: max(now, c.floor) + 1}
		c.counters[k] = ct
		c.clru.pushFront(ct)
		c.bytes += counterSize(k)
	}
	c.evictCounters()
	return nil
}

// counterSize is what a counter under key counts against MaxBytes.
func counterSize(key string) int64 { return int64(len(key)) + counterOverhead }

// evictCounters drops the least recently used counters while there are
// more than MaxCounters, or while they alone exceed MaxBytes (values are
// evicted first), raising the floor to each one's value; c.mu is held.
func (c *Cache) evictCounters() {
	for len(c.counters) > c.maxCounters || (c.bytes > c.maxBytes && len(c.values) == 0 && len(c.counters) > 0) {
		old := c.clru.back()
		c.clru.remove(old)
		delete(c.counters, old.key)
		c.bytes -= counterSize(old.key)
		c.floor = max(c.floor, old.value)
	}
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

// link is the list pointers of an element of a list.
type link[E any] struct{ prev, next *E }

// linked is a pointer to an element that holds its own links.
type linked[E any] interface {
	*E
	links() *link[E]
}

// list is an intrusive doubly linked list, most recently used first: its
// elements hold their links, so a list costs no allocation of its own.
type list[E any, P linked[E]] struct{ head, tail *E }

func (l *list[E, P]) pushFront(e *E) {
	lk := P(e).links()
	lk.prev, lk.next = nil, l.head
	if l.head != nil {
		P(l.head).links().prev = e
	} else {
		l.tail = e
	}
	l.head = e
}

func (l *list[E, P]) remove(e *E) {
	lk := P(e).links()
	if lk.prev != nil {
		P(lk.prev).links().next = lk.next
	} else {
		l.head = lk.next
	}
	if lk.next != nil {
		P(lk.next).links().prev = lk.prev
	} else {
		l.tail = lk.prev
	}
	lk.prev, lk.next = nil, nil
}

func (l *list[E, P]) moveToFront(e *E) {
	if l.head != e {
		l.remove(e)
		l.pushFront(e)
	}
}

// back is the least recently used element, nil for an empty list.
func (l *list[E, P]) back() *E { return l.tail }

// expiryHeap orders values by expiry, soonest first (container/heap).
type expiryHeap []*entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires < h[j].expires }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}

func (h *expiryHeap) Push(x any) {
	e := x.(*entry)
	e.heapIdx = len(*h)
	*h = append(*h, e)
}

func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.heapIdx = -1
	return e
}
