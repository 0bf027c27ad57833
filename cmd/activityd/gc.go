package main

import "runtime/debug"

// Garbage-collector defaults. Go's own (GOGC=100, no memory limit) made the
// collector a quarter of the CPU of an uncached list under load: each page
// allocates its rows and its answer, and the live heap is small, so the
// heap was collected every few megabytes. With GOGC=400 the collector runs
// a quarter as often (uncached lists at 64 clients: 2.7-2.8k → 3.2-3.7k
// requests/s, peak RSS 40 → 56 MB), and the soft memory limit keeps a heap
// that grows (a full in-process cache, batches on SQLite) from growing
// five-fold before a collection: at 128 MiB, SQLite's seed reached
// 124-157 MB of resident memory and a full in-process cache 149 MB; at
// 96 MiB, 126 and 117 MB, inside docs/performance.md's 150 MB with SQLite's page
// caches (outside Go's heap) on top. GOGC and GOMEMLIMIT, when set, win:
// the runtime reads them.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 96 << 20 // bytes
)

// gcSettings returns the GC percent and memory limit to apply, -1 for
// "leave the runtime's own": the environment's GOGC and GOMEMLIMIT.
func gcSettings(getenv func(string) string) (percent int, limit int64) {
	percent, limit = defaultGCPercent, defaultMemoryLimit
	if getenv("GOGC") != "" {
		percent = -1
	}
	if getenv("GOMEMLIMIT") != "" {
		limit = -1
	}
	return percent, limit
}

// tuneGC applies gcSettings.
func tuneGC(getenv func(string) string) {
	percent, limit := gcSettings(getenv)
	if percent >= 0 {
		debug.SetGCPercent(percent)
	}
	if limit >= 0 {
		debug.SetMemoryLimit(limit)
	}
}
