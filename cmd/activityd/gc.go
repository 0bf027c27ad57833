package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Garbage-collector defaults. Go's own (GOGC=100, no memory limit) made the
// collector a quarter of the CPU of an uncached list under load: each page
// allocates its rows and its answer, and the live heap is small, so the
// heap was collected every few megabytes. With GOGC=400 the collector runs
// a quarter as often (uncached lists at 64 clients: 2.7-2.8k → 3.2-3.7k
// requests/s, peak RSS 40 → 56 MB). GOGC alone would let a heap that grows
// (a full in-process cache, batches) grow five-fold before a collection,
// so a soft memory limit derived from MEMORY_LIMIT bounds it (see
// memoryBudget). GOGC and GOMEMLIMIT, when set, win: the runtime reads them.
const defaultGCPercent = 400

// defaultMemoryLimit is MEMORY_LIMIT's default: the 150 MB target of
// docs/performance.md.
const defaultMemoryLimit = 150 << 20

// Memory that lives outside Go's heap, subtracted from MEMORY_LIMIT to give
// Go's soft limit. Measured as resident memory less the runtime's own
// figures under issue 13's loads: the binary's mapped text and data (about
// 27 MiB), the runtime's stacks and metadata and C-side allocations;
// on SQLite, the page caches, which the pure-Go driver's allocator holds at
// about twice their nominal size (16 MiB for the writer and 2 MiB per
// reader measured 46-50 MiB resident with four readers). The writer's
// cache is now 2 MiB (adapters/storage/sqlite); the reserve still counts
// 16, and the difference is headroom for batches in flight, whose decoded
// events sit outside what the body budget counts.
const (
	baseReserve          = 40 << 20
	sqliteWriterCache    = 16 << 20
	sqliteReaderCache    = 2 << 20
	sqliteCacheResidency = 2 // resident bytes per byte of SQLite page cache
	minGoMemory          = 32 << 20
)

// memoryBudget is what MEMORY_LIMIT, the resident memory budgeted for the
// process (a container's limit, say), derives: Go's soft memory limit
// (GOMEMLIMIT) is what remains of it after the memory that lives outside
// Go's heap, and the in-process cache may take a third of that, leaving
// the rest to requests in flight (batch bodies among them) and to the
// collector's headroom.
type memoryBudget struct {
	Limit      int64 // MEMORY_LIMIT, bytes
	Reserve    int64 // estimated memory outside Go's heap
	GoLimit    int64 // Go's soft memory limit applied; -1: GOMEMLIMIT is set, the runtime's own
	GCPercent  int   // GOGC applied; -1: GOGC is set, the runtime's own
	CacheBytes int64 // the in-process read cache's byte bound
}

// memory reads MEMORY_LIMIT and derives the budget for a store at
// databaseURL with maxOpenConns (DB_MAX_OPEN_CONNS; 0: the store's
// default). A MEMORY_LIMIT that leaves Go less than minGoMemory is an
// error; the default grows to leave it that much.
func (e *env) memory(databaseURL string, maxOpenConns int) memoryBudget {
	v, _ := e.first("MEMORY_LIMIT")
	m := memoryBudget{Limit: defaultMemoryLimit, Reserve: memoryReserve(databaseURL, maxOpenConns)}
	if v != "" {
		n, err := parseBytes(v)
		if err != nil || n > 1<<40 {
			e.fail("MEMORY_LIMIT", v, "must be a size such as 150MiB, 512MiB or 2GiB (units B, KiB, MiB, GiB, TiB; Ki, Mi, Gi, Ti as Kubernetes writes them), at most 1TiB")
			n = defaultMemoryLimit
		}
		m.Limit = n
	}
	switch {
	case m.Limit-m.Reserve >= minGoMemory:
	case v == "":
		// Many SQLite readers (one per core) need more than the default.
		m.Limit = m.Reserve + minGoMemory
	default:
		e.fail("MEMORY_LIMIT", v, fmt.Sprintf("must be at least %dMiB with this store: about %d MiB of it lives outside Go's heap "+
			"(the binary; SQLite's page caches), and Go needs %d MiB more", (m.Reserve+minGoMemory)>>20, m.Reserve>>20, minGoMemory>>20))
		m.Limit = m.Reserve + minGoMemory
	}
	m.GoLimit = m.Limit - m.Reserve
	m.CacheBytes = m.GoLimit / 3
	m.GCPercent = defaultGCPercent
	if e.get("GOGC") != "" {
		m.GCPercent = -1
	}
	if e.get("GOMEMLIMIT") != "" {
		m.GoLimit = -1
	}
	return m
}

// memoryReserve estimates the resident memory outside Go's heap for the
// store at databaseURL: baseReserve, and SQLite's page caches.
func memoryReserve(databaseURL string, maxOpenConns int) int64 {
	if !strings.HasPrefix(databaseURL, "sqlite:") {
		return baseReserve
	}
	readers := maxOpenConns // as adapters/storage/sqlite sizes its read pool
	if readers <= 0 {
		readers = max(4, runtime.GOMAXPROCS(0))
	}
	return baseReserve + sqliteCacheResidency*(sqliteWriterCache+int64(readers)*sqliteReaderCache)
}

// parseBytes reads a size: a whole number of bytes, optionally followed by
// a unit (B, KiB, MiB, GiB, TiB as GOMEMLIMIT writes them; Ki, Mi, Gi, Ti
// as Kubernetes does).
func parseBytes(s string) (int64, error) {
	num := strings.TrimRight(s, "BKMGTik")
	unit := s[len(num):]
	shift := map[string]uint{"": 0, "B": 0, "KiB": 10, "Ki": 10, "MiB": 20, "Mi": 20, "GiB": 30, "Gi": 30, "TiB": 40, "Ti": 40}
	sh, ok := shift[unit]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q", unit)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64>>sh {
		return 0, fmt.Errorf("not a size: %q", s)
	}
	return n << sh, nil
}

// apply sets the runtime's GC percent and soft memory limit, except those
// the environment sets (the runtime has read them itself).
func (m memoryBudget) apply() {
	if m.GCPercent >= 0 {
		debug.SetGCPercent(m.GCPercent)
	}
	if m.GoLimit >= 0 {
		debug.SetMemoryLimit(m.GoLimit)
	}
}

// attrs describes the budget for the start-up log line.
func (m memoryBudget) attrs() []any {
	mib := func(n int64) string { return strconv.FormatInt(n>>20, 10) + "MiB" }
	goLimit := mib(m.GoLimit)
	if m.GoLimit < 0 {
		goLimit = "GOMEMLIMIT (" + mib(debug.SetMemoryLimit(-1)) + ")"
	}
	gc := strconv.Itoa(m.GCPercent)
	if m.GCPercent < 0 {
		gc = "GOGC"
	}
	return []any{"memory_limit", mib(m.Limit), "outside_go_heap", mib(m.Reserve), "go_memory_limit", goLimit,
		"gogc", gc, "cache_bytes", mib(m.CacheBytes)}
}

// tuneMemory applies the budget and says what it derived.
func tuneMemory(m memoryBudget, log *slog.Logger, level slog.Level) {
	m.apply()
	log.Log(context.Background(), level, "memory limits derived from MEMORY_LIMIT", m.attrs()...)
}
