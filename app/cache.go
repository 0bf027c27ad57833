package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// CacheResult says how a read was served; adapters show it (X-Cache).
type CacheResult string

// How a read was served.
const (
	CacheHit    CacheResult = "HIT"    // from the cache
	CacheMiss   CacheResult = "MISS"   // from storage, then cached
	CacheBypass CacheResult = "BYPASS" // from storage: the cache is off or failing
)

// Listing is one page of a listing as a use case answers it: either Body,
// the bytes a surface rendered for this page earlier (a cache hit), or
// Page, to render. After rendering Page, the surface hands its bytes back
// with Keep so that the next read is a hit. The rendering stays in the
// surface; app only keeps the bytes, under the view name it was given.
type Listing[P any] struct {
	Page  P
	Body  []byte // non-nil: a cache hit, ready for the wire
	Cache CacheResult
	keep  func([]byte) // nil: nothing to keep (a hit, a bypass, a shared load)
}

// Keep caches body as the rendering of l.Page. It does nothing when the
// read was not a cache miss.
func (l Listing[P]) Keep(body []byte) {
	if l.keep != nil {
		l.keep(body)
	}
}

// CacheConfig turns on read-through caching of list reads.
type CacheConfig struct {
	Cache ports.Cache
	TTL   time.Duration // > 0
	// Logger receives cache failures, at most one warning per WarnEvery.
	Logger    *slog.Logger
	WarnEvery time.Duration // 0: one minute
	// Observe, when set, is told how each read was served and of each cache
	// error (op is "get", "set", "generations" or "bump"), for metrics.
	Observe func(view string, r CacheResult)
	OnError func(op string, err error)
	// Coherence, when set, keeps a cache shared by replicas fresh on all of
	// them through cache faults (see Coherence); one serves every reader
	// of the cache in the process. Without it, a replica whose bump fails
	// reads from storage for one TTL, and other replicas are not told.
	Coherence *Coherence
}

// Option configures Events.
type Option func(*Events)

// WithCache caches list reads as cfg says. Without it, every read goes to
// storage and reports CacheBypass.
func WithCache(cfg CacheConfig) Option {
	return func(s *Events) { s.cache = newReadCache(cfg) }
}

// newReadCache returns the cache cfg describes, nil for none.
func newReadCache(cfg CacheConfig) *readCache {
	if cfg.Cache == nil || cfg.TTL <= 0 {
		return nil
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.WarnEvery <= 0 {
		cfg.WarnEvery = time.Minute
	}
	return &readCache{CacheConfig: cfg}
}

// readCache is read-through caching keyed by generations.
//
// Every cached value's key embeds generation counters read before the value
// was loaded: the epoch (bumped when data of many users goes at once, e.g.
// retention), and either the user's generation (a query bound to one user)
// or the global one (a query across users). A write bumps its users' and
// the global generation after it commits. A read that began before a write
// stores what it loaded under the pre-write generations, which no read
// after the bump asks for: a stale value can never be stored under a
// current key.
type readCache struct {
	CacheConfig
	flight    flight
	lastWarn  atomic.Int64 // unix nanos of the last warning
	distrustT atomic.Int64 // unix nanos until which reads bypass (a bump failed)
	noLatest  atomic.Bool  // the cache refused GetLatest: read with Generations and Get
}

const (
	genEpoch  = "gen:epoch"
	genGlobal = "gen:all"
	genCounts = "gen:counts" // bumped whenever a counting window is written
)

func genUser(id int64) string { return "gen:u:" + strconv.FormatInt(id, 10) }

// cacheKey names a cached read apart from its generations: the value is
// stored under ports.KeyAt(prefix, generations, suffix).
type cacheKey struct{ prefix, suffix string }

// cachedRead is read-through caching of one rendered read: the bytes are
// kept under the key at the generations of the epoch and of scope, read
// before load runs, so a write that bumps them makes every earlier value
// unreachable. A cache that reads the generations and the value in one
// round trip (ports.LatestGetter) is asked so. Without a cache, or a view,
// or while the cache is not trusted, load runs and nothing is kept.
func cachedRead[P any](ctx context.Context, c *readCache, view, scope string, key func() cacheKey, load func(context.Context) (P, error)) (Listing[P], error) {
	bypass := func() (Listing[P], error) {
		page, err := load(ctx)
		if err != nil {
			return Listing[P]{}, err
		}
		if c != nil && view != "" {
			c.observe(view, CacheBypass)
		}
		return Listing[P]{Page: page, Cache: CacheBypass}, nil
	}
	if c == nil || view == "" {
		return bypass()
	}
	k := key()
	coh := c.Coherence
	var epoch int64
	if coh != nil {
		if !coh.Trusted() {
			return bypass()
		}
		epoch = coh.Epoch()
		k.prefix += "@" + strconv.FormatInt(epoch, 10)
	} else if time.Now().UnixNano() < c.distrustT.Load() {
		return bypass()
	}
	var (
		gens []int64
		b    []byte
		hit  bool
		err  error
	)
	if lg, ok := c.Cache.(ports.LatestGetter); ok && !c.noLatest.Load() {
		gens, b, hit, err = lg.GetLatest(ctx, []string{genEpoch, scope}, k.prefix, k.suffix)
		if errors.Is(err, errors.ErrUnsupported) {
			c.noLatest.Store(true) // this deployment cannot: two round trips from now on
		} else if err != nil {
			c.fail("get", err)
			return bypass()
		}
	}
	if gens == nil {
		if gens, err = c.Cache.Generations(ctx, genEpoch, scope); err != nil {
			c.fail("generations", err)
			return bypass()
		}
		if b, hit, err = c.Cache.Get(ctx, ports.KeyAt(k.prefix, gens, k.suffix)); err != nil {
			c.fail("get", err)
			return bypass()
		}
	}
	if coh != nil && (coh.Epoch() != epoch || !coh.Trusted()) {
		// The cache server changed while this read ran (its key is of the
		// old epoch), or a bump was missed: what it read may be stale.
		return bypass()
	}
	if hit {
		c.observe(view, CacheHit)
		return Listing[P]{Body: b, Cache: CacheHit}, nil
	}
	full := ports.KeyAt(k.prefix, gens, k.suffix)
	// Concurrent misses for one key share one load, and the first caller
	// keeps the rendering. The load runs detached from the first caller's
	// cancellation so one impatient client cannot fail the others waiting
	// on it.
	res, err, shared := c.flight.Do(full, func() (any, error) {
		return load(context.WithoutCancel(ctx))
	})
	if err != nil {
		return Listing[P]{Cache: CacheMiss}, err
	}
	c.observe(view, CacheMiss)
	l := Listing[P]{Page: res.(P), Cache: CacheMiss}
	if !shared {
		l.keep = func(body []byte) {
			if err := c.Cache.Set(context.WithoutCancel(ctx), full, body, c.TTL); err != nil {
				c.fail("set", err)
			}
		}
	}
	return l, nil
}

// invalidate bumps the generations of users (and the global one) after a
// committed write. If the cache cannot be told, Coherence records the bump
// for every replica and returns once none can serve what the write
// changed; without Coherence, this replica stops trusting the cache for
// one TTL, by which time every value it might have served stale has
// expired.
func (c *readCache) invalidate(ctx context.Context, users ...int64) {
	keys := make([]string, 0, len(users)+1)
	keys = append(keys, genGlobal)
	for _, u := range users {
		keys = append(keys, genUser(u))
	}
	c.bump(ctx, keys...)
}

func (c *readCache) bump(ctx context.Context, keys ...string) {
	ctx = context.WithoutCancel(ctx) // the write committed; its invalidation must happen
	err := c.Cache.Bump(ctx, keys...)
	if err != nil {
		err = c.Cache.Bump(ctx, keys...) // one retry: a blip must not cost a TTL of bypass
	}
	if err == nil {
		return
	}
	c.fail("bump", err)
	if c.Coherence != nil {
		c.Coherence.missed(ctx, keys)
		return
	}
	c.distrustT.Store(time.Now().Add(c.TTL).UnixNano())
}

func (c *readCache) observe(view string, r CacheResult) {
	if c.Observe != nil {
		c.Observe(view, r)
	}
}

// fail reports a cache error: always to OnError, to the log at most once
// per WarnEvery.
func (c *readCache) fail(op string, err error) {
	if c.OnError != nil {
		c.OnError(op, err)
	}
	now := time.Now().UnixNano()
	last := c.lastWarn.Load()
	if now-last >= int64(c.WarnEvery) && c.lastWarn.CompareAndSwap(last, now) {
		c.Logger.Warn("cache unavailable; reads go to storage", "op", op, "err", err,
			"next_warning_in", c.WarnEvery)
	}
}

// listKey is the cache key of a filter rendered by a view: the normalised
// filter (so parameter order, defaults and casing make no distinct keys),
// hashed, after the generations it was loaded under.
func listKey(view string, f domain.Filter) cacheKey {
	b := make([]byte, 0, 128)
	b = append(b, "u="...)
	b = strconv.AppendInt(b, f.UserID, 10)
	b = append(b, ";s="...)
	b = append(b, f.Status...)
	b = append(b, ";tf="...)
	b = append(b, f.TimeField...)
	b = append(b, ";o="...)
	b = append(b, f.Order...)
	b = append(b, ";l="...)
	b = strconv.AppendInt(b, int64(f.Limit), 10)
	b = append(b, ";off="...)
	b = strconv.AppendInt(b, int64(f.Offset), 10)
	b = append(b, ";a="...)
	for _, a := range sortedActions(f.Actions) {
		b = append(b, a...)
		b = append(b, ',')
	}
	if !f.From.IsZero() {
		b = append(b, ";from="...)
		b = strconv.AppendInt(b, f.From.UnixMicro(), 10)
	}
	if !f.To.IsZero() {
		b = append(b, ";to="...)
		b = strconv.AppendInt(b, f.To.UnixMicro(), 10)
	}
	if f.After != nil {
		b = append(b, ";after="...)
		b = append(b, f.After.Encode()...)
	}
	return cacheKey{prefix: "list:" + view, suffix: hashKey(b)}
}

// hashKey is the first 128 bits of the SHA-256 of a normalised filter, in
// hex: keys of one length whatever the filter.
func hashKey(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func sortedActions(as []domain.Action) []domain.Action {
	out := slices.Clone(as)
	slices.Sort(out)
	return out
}

// flight lets concurrent callers of one key share one execution of fn (the
// idea of golang.org/x/sync/singleflight, in the few lines this package
// needs, so the app ring keeps to the standard library).
type flight struct {
	mu    sync.Mutex
	calls map[string]*flightCall
}

type flightCall struct {
	done chan struct{}
	val  any
	err  error
}

// Do runs fn once for all callers that ask for key while it runs.
func (f *flight) Do(key string, fn func() (any, error)) (any, error, bool) {
	f.mu.Lock()
	if c, ok := f.calls[key]; ok {
		f.mu.Unlock()
		<-c.done
		return c.val, c.err, true
	}
	if f.calls == nil {
		f.calls = map[string]*flightCall{}
	}
	// Waiters see this error if fn panics instead of returning.
	c := &flightCall{done: make(chan struct{}), err: errors.New("shared load did not complete")}
	f.calls[key] = c
	f.mu.Unlock()

	defer func() {
		f.mu.Lock()
		delete(f.calls, key)
		f.mu.Unlock()
		close(c.done)
	}()
	c.val, c.err = fn()
	return c.val, c.err, false
}
