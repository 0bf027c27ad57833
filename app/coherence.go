package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/activityd/activityd/ports"
)

// Coherence keeps a cache shared by replicas (Redis) from serving a read
// older than a write that was answered before the read began, on every
// replica, through cache faults. Generations (cache.go) already do that
// while every bump reaches the cache; Coherence covers the rest with the
// shared store as the witness (ports.CacheLedger):
//
//   - A replica trusts the cache only under a lease: until Lease after the
//     start of its last poll of the ledger that delivered, to the cache,
//     every bump recorded as missed. It polls every Poll.
//   - A write whose bump the cache does not take (Redis cut off from this
//     replica, timing out, restarting) is recorded in the ledger, this
//     replica stops trusting the cache at once, and the write is answered
//     only Lease after the record committed. By then every replica has
//     either polled since the record (and delivered the bump, or else not
//     renewed its trust) or let its lease lapse: none serves what the
//     write changed from the cache. The writing replica trusts again as
//     soon as one of its polls delivers the bump, a Poll after Redis is
//     back.
//   - The cache server's identity (Redis's run_id) is checked on every new
//     connection, before the connection serves a call; when it changed (a
//     restart, which may reload an old snapshot holding counters from
//     before bumps it lost; a failover to a replica that lagged) the
//     ledger's epoch moves on. The epoch is part of every key, so nothing
//     cached before the change is reached again, and a read whose epoch
//     changed while it ran goes to storage.
//
// The price is paid only under faults: a write whose bump failed waits
// Lease (1 s by default) before it is answered, and reads go to storage
// while a replica does not trust the cache.
type Coherence struct {
	cache  ports.Cache
	ledger ports.CacheLedger
	cfg    CoherenceConfig
	base   time.Time // the monotonic origin of trustUntil

	trustUntil atomic.Int64 // nanoseconds since base before which reads may use the cache
	epoch      atomic.Int64 // the ledger's epoch as last learnt; it only grows

	mu         sync.Mutex
	distrusts  uint64   // counts missed bumps, so a poll begun before one cannot restore trust
	unrecorded []string // counters the ledger could not take either; Run retries them
	seq        int64    // the last ledger record delivered (Run's goroutine only)
	pruned     time.Time
	lastWarn   atomic.Int64
}

// CoherenceConfig tunes Coherence; zero fields take the defaults.
type CoherenceConfig struct {
	// Lease is how long a poll of the ledger lets a replica trust the
	// cache, and how long a write whose bump failed waits before it is
	// answered. Default 1s.
	Lease time.Duration
	// Poll is how often the ledger is read (default Lease/4). It must be
	// well below Lease, or the cache is trusted only part of the time.
	Poll time.Duration
	// Keep is how long records are kept: at least the lifetime of a cached
	// value (CACHE_TTL), after which nothing cached before a record is
	// left to hide. Default 13h (above the largest CACHE_TTL).
	Keep time.Duration
	// Logger receives failures, at most one warning per minute.
	Logger *slog.Logger
	// OnError, when set, is told of each failure: op is "record", "missed",
	// "deliver", "rebase" or "prune".
	OnError func(op string, err error)
}

// Defaults of CoherenceConfig.
const (
	DefaultLease = time.Second
	defaultKeep  = 13 * time.Hour
	// leaseMargin is added to a failed write's wait, for the time between
	// a poll's start on one replica and its snapshot on the store.
	leaseMargin = 50 * time.Millisecond
	// recordWithin bounds how long a write retries recording a missed bump
	// before it leaves the record to Run and is answered.
	recordWithin = 3 * time.Second
	// deliverChunk bounds the counters bumped in one cache call.
	deliverChunk = 256
)

// NewCoherence returns the coherence of cache, witnessed by ledger. Reads
// bypass the cache until Run's first poll has succeeded.
func NewCoherence(cache ports.Cache, ledger ports.CacheLedger, cfg CoherenceConfig) *Coherence {
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Poll <= 0 || cfg.Poll > cfg.Lease/2 {
		cfg.Poll = cfg.Lease / 4
	}
	if cfg.Keep <= 0 {
		cfg.Keep = defaultKeep
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Coherence{cache: cache, ledger: ledger, cfg: cfg, base: time.Now()}
	if w, ok := cache.(ports.InstanceWatcher); ok {
		w.WatchInstance(c.rebase)
	}
	return c
}

// Run polls the ledger every Poll until ctx is done. Without it running,
// the cache is never trusted.
func (c *Coherence) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.Poll)
	defer t.Stop()
	for {
		if err := c.poll(ctx); err != nil && ctx.Err() == nil {
			c.warn("coherence: cache not trusted until the ledger can be read and its bumps delivered", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Trusted reports whether reads may use the cache now.
func (c *Coherence) Trusted() bool { return c.since() < c.trustUntil.Load() }

// Epoch is the cache epoch keys are made under.
func (c *Coherence) Epoch() int64 { return c.epoch.Load() }

func (c *Coherence) since() int64 { return int64(time.Since(c.base)) }

// poll records what writes could not, reads the ledger, adopts its epoch,
// delivers the missed bumps recorded since the last poll and, when all of
// that worked and no bump was missed meanwhile, renews the lease.
func (c *Coherence) poll(ctx context.Context) error {
	start := c.since()
	c.mu.Lock()
	distrusts := c.distrusts
	pending := c.unrecorded
	c.unrecorded = nil
	c.mu.Unlock()
	if len(pending) > 0 {
		if err := c.ledger.RecordMissed(ctx, pending); err != nil {
			c.mu.Lock()
			c.unrecorded = append(c.unrecorded, pending...)
			c.mu.Unlock()
			c.report("record", err)
			return fmt.Errorf("record missed bumps: %w", err)
		}
	}
	st, err := c.ledger.Missed(ctx, c.seq)
	if err != nil {
		c.report("missed", err)
		return fmt.Errorf("read the cache ledger: %w", err)
	}
	c.raiseEpoch(st.Epoch)
	if err := c.deliver(ctx, st.Counters); err != nil {
		c.report("deliver", err)
		return fmt.Errorf("deliver %d missed bumps: %w", len(st.Counters), err)
	}
	c.seq = st.Seq
	c.mu.Lock()
	if c.distrusts == distrusts {
		c.trustUntil.Store(start + int64(c.cfg.Lease))
	}
	c.mu.Unlock()
	if now := time.Now(); now.Sub(c.pruned) > time.Minute {
		c.pruned = now
		if err := c.ledger.PruneMissed(ctx, now.Add(-c.cfg.Keep)); err != nil {
			c.report("prune", err) // old records only cost a little reading
		}
	}
	return nil
}

// deliver bumps counters in the cache, a chunk per call.
func (c *Coherence) deliver(ctx context.Context, counters []string) error {
	if len(counters) == 0 {
		return nil
	}
	counters = slices.Compact(slices.Sorted(slices.Values(counters)))
	for chunk := range slices.Chunk(counters, deliverChunk) {
		if err := c.cache.Bump(ctx, chunk...); err != nil {
			return err
		}
	}
	return nil
}

// missed is what a write does when the cache did not take its bump: stop
// trusting the cache here, record the bump for every replica, and wait
// out the lease other replicas may still hold.
func (c *Coherence) missed(ctx context.Context, counters []string) {
	c.mu.Lock()
	c.distrusts++
	c.trustUntil.Store(0)
	c.mu.Unlock()
	deadline := time.Now().Add(recordWithin)
	for {
		err := c.ledger.RecordMissed(ctx, counters)
		if err == nil {
			break
		}
		c.report("record", err)
		if time.Now().After(deadline) {
			c.mu.Lock()
			c.unrecorded = append(c.unrecorded, counters...)
			c.mu.Unlock()
			c.cfg.Logger.Error("coherence: a missed cache invalidation could not be recorded; "+
				"other replicas may serve reads older than this write until it is (retrying)",
				"counters", len(counters), "err", err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(c.cfg.Lease + leaseMargin)
}

// rebase is called on each new cache connection with the server's
// identity, before the connection serves a call.
func (c *Coherence) rebase(ctx context.Context, instance string) error {
	epoch, err := c.ledger.Rebase(ctx, instance)
	if err != nil {
		c.report("rebase", err)
		return fmt.Errorf("coherence: record cache instance: %w", err)
	}
	c.raiseEpoch(epoch)
	return nil
}

func (c *Coherence) raiseEpoch(e int64) {
	for {
		cur := c.epoch.Load()
		if e <= cur || c.epoch.CompareAndSwap(cur, e) {
			return
		}
	}
}

func (c *Coherence) report(op string, err error) {
	if c.cfg.OnError != nil {
		c.cfg.OnError(op, err)
	}
}

func (c *Coherence) warn(msg string, err error) {
	now := time.Now().UnixNano()
	last := c.lastWarn.Load()
	if now-last >= int64(time.Minute) && c.lastWarn.CompareAndSwap(last, now) {
		c.cfg.Logger.Warn(msg, "err", err)
	}
}
